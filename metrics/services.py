"""Writes for metrics that are not the collector's batches."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from events import security
from events.broadcast import close_connections
from metrics.models import ConnectionSession


@transaction.atomic
def request_disconnect(connection_ids: list[str], *, actor_id: int | None = None) -> int:
    """An operator's disconnect: recorded on the open sessions, then published to every process
    after commit. A process that misses the message (Redis away) closes the socket at its next
    check (realtime.connections). Returns how many open sessions were marked. The security log
    records who asked (`actor_id`), for which sockets, once committed."""
    marked = ConnectionSession.objects.filter(
        connection_id__in=connection_ids, ended_at__isnull=True
    ).update(disconnect_requested_at=timezone.now())
    close_connections(list(connection_ids))
    ids = [str(connection_id) for connection_id in connection_ids]
    transaction.on_commit(
        lambda: security.record(
            security.Event.OPERATOR_DISCONNECT, actor_id=actor_id, connection_ids=ids
        )
    )
    return marked
