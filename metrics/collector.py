"""Connection metrics, collected in memory and written in batches.

Each socket counts in its own slotted state (realtime.consumers.base._SocketState): messages and
bytes each way, errors, heartbeat latency, drops. One collector per process (per event loop)
knows its open sockets and, every METRICS_FLUSH_SECONDS, writes in one transaction: rows for new
sockets, the counters of sockets that changed, the final state of sockets that closed, and one
MetricsSnapshot of the process. A socket costs no database write per message.

A process is live while its snapshots are recent; sessions left open by a process that stopped
snapshotting are closed by the next flush of any process (`end_reason = "process_lost"`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from metrics.models import ConnectionSession, MetricsSnapshot
from realtime.db import db
from realtime.loops import per_loop

logger = logging.getLogger(__name__)

COUNTER_FIELDS = (
    "messages_received",
    "messages_sent",
    "bytes_received",
    "bytes_sent",
    "errors",
    "reconnect_attempts",
    "average_latency_ms",
    "peak_latency_ms",
    "connection_drops",
    "last_activity",
)


EMPTY_TYPE_FIGURES = {
    "active": 0,
    "messages_received": 0,
    "messages_sent": 0,
    "errors": 0,
    "latency_sum_ms": 0.0,
    "latency_count": 0,
}


def process_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def _wall(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def counters(consumer: Any) -> dict[str, Any]:
    """The seed's ConnectionMetrics counters of one socket, as ConnectionSession fields."""
    io = consumer.io
    drops = 0
    dropped = getattr(consumer.channel_layer, "dropped", None)
    if dropped is not None:
        drops = dropped(consumer.channel_name)
    return {
        "messages_received": io.messages_in,
        "messages_sent": io.messages_out,
        "bytes_received": io.bytes_in,
        "bytes_sent": io.bytes_out,
        "errors": io.errors,
        "reconnect_attempts": io.reconnects,
        "average_latency_ms": (io.latency_sum / io.latency_count) if io.latency_count else None,
        "peak_latency_ms": io.latency_peak if io.latency_count else None,
        "connection_drops": drops,
        "last_activity": _wall(io.last_activity),
    }


class Collector:
    def __init__(self) -> None:
        self.process = process_name()
        self.started_at = timezone.now()
        self.sockets: dict[str, Any] = {}  # connection id -> consumer, open on this process
        self.written: set[str] = set()  # open sockets that have a row
        self.ended: list[dict[str, Any]] = []  # final rows waiting for the next flush
        self.connections_total = 0
        # Counters of sockets already closed (the process totals go on after a socket ends).
        self.closed = {"messages_received": 0, "messages_sent": 0, "errors": 0}
        self.latency_sum = 0.0  # heartbeat round trips since the last snapshot
        self.latency_count = 0
        self.last_prune = 0.0
        self.task: asyncio.Task[None] | None = None

    # -- called by the consumers ------------------------------------------------------------

    def opened(self, consumer: Any) -> None:
        self.sockets[consumer.connection_id] = consumer
        self.connections_total += 1
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run())

    def closed_socket(self, consumer: Any, code: int | None, reason: str) -> None:
        if self.sockets.pop(consumer.connection_id, None) is None:
            return
        row = {**self._identity(consumer), **counters(consumer)}
        row.update(ended_at=timezone.now(), close_code=code, end_reason=reason[:32])
        self.ended.append(row)
        self.written.discard(consumer.connection_id)
        for key in self.closed:
            self.closed[key] += row[key]

    def heartbeat(self, latency_ms: float) -> None:
        self.latency_sum += latency_ms
        self.latency_count += 1

    def find(self, connection_id: str) -> Any | None:
        return self.sockets.get(connection_id)

    # -- flushing ---------------------------------------------------------------------------

    def _identity(self, consumer: Any) -> dict[str, Any]:
        client = consumer.scope.get("client") or ("", 0)
        return {
            "connection_id": consumer.connection_id,
            "user_id": consumer.user.pk,
            "username": consumer.user.get_username(),
            "connection_type": str(consumer.connection_type),
            "trip_id": getattr(consumer, "trip_id", None),
            "process": self.process,
            "client_address": str(client[0])[:64],
            "connected_at": _wall(consumer.io.connected_at),
        }

    async def _run(self) -> None:
        while self.sockets or self.ended:
            await asyncio.sleep(settings.METRICS_FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                logger.exception("writing connection metrics failed; retrying at the next flush")

    async def flush(self) -> None:
        new, changed = [], []
        by_type: dict[str, dict[str, Any]] = {}
        totals = dict(self.closed)
        for cid, consumer in list(self.sockets.items()):
            row = counters(consumer)
            kind = str(consumer.connection_type)
            figures = by_type.setdefault(kind, dict(EMPTY_TYPE_FIGURES))
            figures["active"] += 1
            for key in ("messages_received", "messages_sent", "errors"):
                figures[key] += row[key]
                totals[key] += row[key]
            if row["average_latency_ms"] is not None:
                figures["latency_sum_ms"] += row["average_latency_ms"]
                figures["latency_count"] += 1
            signature = hash(tuple(row.values()))
            if cid not in self.written:
                new.append({**self._identity(consumer), **row})
                consumer.io.flushed = signature
            elif consumer.io.flushed != signature:
                changed.append({"connection_id": cid, **row})
                consumer.io.flushed = signature
        ended, self.ended = self.ended, []
        snapshot = {
            "process": self.process,
            "active_connections": len(self.sockets),
            "connections_total": self.connections_total,
            "messages_received": totals["messages_received"],
            "messages_sent": totals["messages_sent"],
            "errors": totals["errors"],
            "latency_sum_ms": self.latency_sum,
            "latency_count": self.latency_count,
            "by_type": by_type,
            "started_at": self.started_at,
        }
        self.latency_sum, self.latency_count = 0.0, 0
        prune = time.monotonic() - self.last_prune > 60
        if prune:
            self.last_prune = time.monotonic()
        try:
            await db(write_batch)(new, changed, ended, snapshot, prune)
        except Exception:
            # Keep the final rows for one more attempt, not forever: a batch that cannot be
            # written must not stop every later flush.
            self.ended = [row for row in ended if not row.get("retried")] + self.ended
            for row in self.ended:
                row["retried"] = True
            raise
        self.written.update(row["connection_id"] for row in new)


@transaction.atomic
def write_batch(
    new: list[dict[str, Any]],
    changed: list[dict[str, Any]],
    ended: list[dict[str, Any]],
    snapshot: dict[str, Any],
    prune: bool = False,
) -> None:
    """One flush of one process, in one transaction."""
    now = timezone.now()
    for row in ended:
        row.pop("retried", None)
    # A user deleted while (or since) connected: the session stays, without the link.
    rows_with_users = [*new, *ended]
    wanted = {row["user_id"] for row in rows_with_users if row.get("user_id") is not None}
    if wanted:
        present = set(get_user_model().objects.filter(pk__in=wanted).values_list("pk", flat=True))
        for row in rows_with_users:
            if row.get("user_id") not in present:
                row["user_id"] = None
    finals = {row["connection_id"]: row for row in ended}
    ConnectionSession.objects.bulk_create(
        [ConnectionSession(last_seen=now, **row) for row in new], ignore_conflicts=True
    )
    updates = {row["connection_id"]: row for row in changed}
    if updates or finals:
        rows = ConnectionSession.objects.filter(connection_id__in=[*updates, *finals])
        existing = {row.connection_id: row for row in rows}
        for cid, data in {**updates, **finals}.items():
            session = existing.get(cid)
            if session is None:
                if cid in finals:  # opened and closed between two flushes
                    ConnectionSession.objects.create(last_seen=now, **data)
                continue
            for key, value in data.items():
                setattr(session, key, value)
            session.last_seen = now
        ConnectionSession.objects.bulk_update(
            existing.values(),
            [*COUNTER_FIELDS, "last_seen", "ended_at", "close_code", "end_reason"],
            batch_size=500,
        )
    MetricsSnapshot.objects.create(taken_at=now, **snapshot)
    # Sessions of processes that stopped snapshotting (killed, crashed) are over.
    alive = live_processes(now)
    ConnectionSession.objects.filter(ended_at__isnull=True).exclude(process__in=alive).update(
        ended_at=now, end_reason="process_lost"
    )
    if prune:
        prune_history(now)


def live_processes(now: datetime | None = None) -> list[str]:
    now = now or timezone.now()
    window = timedelta(seconds=3 * settings.METRICS_FLUSH_SECONDS + 5)
    return list(
        MetricsSnapshot.objects.filter(taken_at__gte=now - window)
        .values_list("process", flat=True)
        .distinct()
    )


def prune_history(now: datetime | None = None) -> tuple[int, int]:
    """Delete ended sessions older than METRICS_SESSION_RETENTION_DAYS and snapshots older than
    METRICS_SNAPSHOT_RETENTION_HOURS. Returns (sessions, snapshots) deleted."""
    now = now or timezone.now()
    sessions, _ = ConnectionSession.objects.filter(
        ended_at__lt=now - timedelta(days=settings.METRICS_SESSION_RETENTION_DAYS)
    ).delete()
    snapshots, _ = MetricsSnapshot.objects.filter(
        taken_at__lt=now - timedelta(hours=settings.METRICS_SNAPSHOT_RETENTION_HOURS)
    ).delete()
    return sessions, snapshots


collector = per_loop(Collector)
