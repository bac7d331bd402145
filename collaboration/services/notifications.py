"""Notifications: stored per user, pushed to every socket of the user after commit."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

import protocol
from collaboration import payloads
from collaboration.models import Notification
from events.broadcast import broadcast_on_commit
from events.groups import user_notifications_group


def notify(
    *,
    recipient: User,
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
    data: dict[str, Any] | None = None,
) -> Notification:
    """Store a notification and push it to every socket of the recipient after commit."""
    with transaction.atomic():
        notification = Notification.objects.create(
            recipient=recipient,
            kind=kind,
            title=title[:200],
            body=body,
            link=link[:500],
            data=data or {},
        )
        unread = Notification.objects.filter(recipient=recipient, read_at__isnull=True).count()
        event = protocol.server_message(
            "notification.created",
            notification=payloads.notification_dict(notification),
            unread_count=unread,
        )
        broadcast_on_commit(
            user_notifications_group(recipient.pk),
            {"type": "notification.event", "text": protocol.encode(event)},
        )
    return notification


@transaction.atomic
def notification_read(*, user: User, ids: list[int] | None = None) -> tuple[list[int], int]:
    """Mark the user's notifications read (`ids=None`: all). Every socket of the user hears
    which ones and the new unread count. Ids of others' notifications are ignored, not probed."""
    unread = Notification.objects.select_for_update().filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    changed = sorted(unread.values_list("pk", flat=True))
    if changed:
        Notification.objects.filter(pk__in=changed).update(read_at=timezone.now())
    count = Notification.objects.filter(recipient=user, read_at__isnull=True).count()
    if changed:
        event = protocol.server_message("notification.read", ids=changed, unread_count=count)
        broadcast_on_commit(
            user_notifications_group(user.pk),
            {"type": "notification.event", "text": protocol.encode(event)},
        )
    return changed, count
