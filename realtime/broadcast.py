"""The one fan-out path: every event for many sockets leaves through here, after commit."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def trip_group(trip_id: int | str) -> str:
    return f"trip-{trip_id}"


def chat_group(trip_id: int | str) -> str:
    return f"chat-{trip_id}"


def user_notifications_group(user_id: int | str) -> str:
    return f"notifications-{user_id}"


def _group_send(group: str, event: dict[str, Any]) -> None:
    event = {**event, "published_at": time.time()}  # for tripsage_fanout_latency_seconds
    layer = get_channel_layer()
    blocking = getattr(layer, "group_send_blocking", None)
    if blocking is not None:
        blocking(group, event)  # realtime.layers: one PUBLISH, no event loop hop
    else:
        async_to_sync(layer.group_send)(group, event)


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send `event` to `group` once the current transaction commits: a rolled-back change is
    never seen by anyone. Outside a transaction it is sent at once."""
    transaction.on_commit(partial(_group_send, group, event))


async def broadcast_now(group: str, event: dict[str, Any]) -> None:
    """Send an ephemeral event (presence, editing indicators) that has no transaction."""
    await get_channel_layer().group_send(group, event)


def revoke_user_sockets(user_id: int) -> None:
    """Close every socket of a user (deactivated or deleted) on every server process: one
    message to the group every process listens on (realtime.revocation)."""
    from realtime.revocation import USERS_GROUP

    broadcast_on_commit(USERS_GROUP, {"type": "realtime.user_revoked", "user_id": user_id})


def close_connections(connection_ids: list[str]) -> None:
    """Close these sockets (an operator's "disconnect"), on whichever process holds them."""
    from realtime.revocation import USERS_GROUP

    broadcast_on_commit(
        USERS_GROUP, {"type": "realtime.connections_close", "connection_ids": list(connection_ids)}
    )
