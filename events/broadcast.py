"""The one fan-out path: every event for many sockets leaves through here, after commit."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from events.fanout import channel_layer, fanout
from events.groups import USERS_GROUP

logger = logging.getLogger(__name__)

# Sent when a publish after commit failed (Redis away, or slower than PUBLISH_TIMEOUT_SECONDS),
# with `group` and `error`; metrics counts it (tripsage_publish_failures_total).
publish_failed = Signal()


def _group_send(group: str, event: dict[str, Any]) -> None:
    """Publish a committed change: bounded in time, and its failure is logged and counted, never
    raised into the request that committed it. The sockets that missed it catch up from the log
    (realtime.convergence)."""
    event = {**event, "published_at": time.time()}  # for tripsage_fanout_latency_seconds
    try:
        fanout().publish_blocking(group, event)  # realtime.layers: one PUBLISH, no loop hop
    except Exception as error:
        logger.warning(
            "publishing %s to %s failed after commit (%s: %s); its sockets catch up from the log",
            event.get("type"),
            group,
            type(error).__name__,
            error,
        )
        publish_failed.send_robust(sender=None, group=group, error=error)


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send `event` to `group` once the current transaction commits: a rolled-back change is
    never seen by anyone. Outside a transaction it is sent at once."""
    transaction.on_commit(partial(_group_send, group, event))


async def broadcast_now(group: str, event: dict[str, Any]) -> None:
    """Send an ephemeral event (presence, editing indicators) that has no transaction."""
    await channel_layer().group_send(group, event)


def revoke_user_sockets(user_id: int) -> None:
    """Close every socket of a user (deactivated or deleted) on every server process: one
    message to the group every process listens on (realtime.connections)."""
    broadcast_on_commit(USERS_GROUP, {"type": "realtime.user_revoked", "user_id": user_id})


def close_connections(connection_ids: list[str]) -> None:
    """Close these sockets (an operator's "disconnect"), on whichever process holds them."""
    broadcast_on_commit(
        USERS_GROUP, {"type": "realtime.connections_close", "connection_ids": list(connection_ids)}
    )
