"""Closes a user's sockets everywhere when the account is deactivated or deleted."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from events.broadcast import revoke_user_sockets


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="realtime-user-deactivated")
def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        revoke_user_sockets(instance.pk)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="realtime-user-deleted")
def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    revoke_user_sockets(instance.pk)
