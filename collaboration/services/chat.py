"""The trip chat: posts numbered by the trip's `chat_seq`; mentions notify the members named."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

import protocol
from collaboration import fields, payloads
from collaboration.errors import InvalidChange
from collaboration.models import ChatMessage, Notification, Trip, TripMember
from collaboration.services.locks import lock_trip, member_role
from collaboration.services.notifications import notify
from events.broadcast import broadcast_on_commit
from events.groups import chat_group

MENTION = re.compile(r"(?<![\w@.+-])@([\w.@+-]{1,150})")


@dataclass(frozen=True)
class ChatResult:
    message: dict[str, Any]  # the stored message on the wire
    duplicate: bool  # True: a retry of a message already posted (nothing new happened)


@transaction.atomic
def chat_post(
    *, trip_id: int, author: User, text: str, client_id: uuid.UUID | None = None
) -> ChatResult:
    """Post to the trip's chat (every member, viewers included). A retry with the same
    `client_id` returns the first post. Mentions (`@username`) of members notify them."""
    text = text.replace("\x00", "").strip() if isinstance(text, str) else ""
    fields.check_storable_text("text", text)
    if not text:
        raise InvalidChange("A chat message needs some text.", field="text")
    if len(text) > settings.CHAT_MAX_LENGTH:
        raise InvalidChange(
            f"A chat message holds at most {settings.CHAT_MAX_LENGTH} characters.",
            field="text",
            max_length=settings.CHAT_MAX_LENGTH,
        )
    trip = lock_trip(trip_id)
    member_role(trip, author)
    if client_id is not None:
        first = ChatMessage.objects.filter(trip=trip, author=author, client_id=client_id).first()
        if first is not None:
            return ChatResult(payloads.chat_message_dict(first), duplicate=True)
    trip.chat_seq += 1
    Trip.objects.filter(pk=trip.pk).update(chat_seq=trip.chat_seq)
    message = ChatMessage.objects.create(
        trip=trip, seq=trip.chat_seq, author=author, text=text, client_id=client_id
    )
    body = payloads.chat_message_dict(message)
    event = protocol.server_message("chat.message", seq=message.seq, message=body)
    broadcast_on_commit(
        chat_group(trip.pk),
        {"type": "chat.event", "seq": message.seq, "text": protocol.encode(event)},
    )
    _notify_mentions(trip, message, author)
    return ChatResult(body, duplicate=False)


def _notify_mentions(trip: Trip, message: ChatMessage, author: User) -> None:
    names = {name.rstrip(".") for name in MENTION.findall(message.text)}
    if not names:
        return
    mentioned = (
        TripMember.objects.filter(trip=trip, user__username__in=names)
        .exclude(user=author)
        .select_related("user")
    )
    for member in mentioned:
        notify(
            recipient=member.user,
            kind=Notification.Kind.MENTION,
            title=f"{author.get_username()} mentioned you in {trip.name}",
            body=message.text[:500],
            link=f"/trips/{trip.pk}/edit",
            data={"trip_id": trip.pk, "chat_seq": message.seq, "by": payloads.user_ref(author)},
        )
