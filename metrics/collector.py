"""Connection metrics, collected in memory and written in batches.

Each socket counts in its own slotted state (realtime.flow.SocketState): messages and
bytes each way, errors, heartbeat latency, drops. One collector per process (per event loop)
knows its open sockets and, every METRICS_FLUSH_SECONDS, writes in one transaction: rows for new
sockets, the counters of sockets that changed, the final state of sockets that closed, and one
MetricsSnapshot of the process. A socket costs no database write per message.

A process is live while its snapshots are recent; sessions left open by a process that stopped
snapshotting are closed by the next flush of any process (`end_reason = "process_lost"`) that has
itself been writing for that long, so that after the database was away the live processes write
again before anyone is declared lost. While the database is away nothing is lost but the
snapshots: new sockets' rows and closed sockets' final rows wait for the next flush that succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from events.aio import CATCH_UP, db, per_loop
from events.fanout import fanout
from metrics import instruments
from metrics.models import ConnectionSession, MetricsSnapshot

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
    drops = fanout(consumer.channel_layer).dropped(consumer.channel_name)
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
    NEW_PER_FLUSH = 500  # rows inserted per flush at most (a connect storm spreads out)
    REFRESH_PER_FLUSH = 200  # open sockets' rows refreshed per flush at most
    # Final rows of closed sockets kept while the database is away; past this, the oldest are
    # dropped (a connect storm's worth of sockets, each a few hundred bytes).
    MAX_UNWRITTEN = 10_000

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.process = process_name()
        self.started_at = timezone.now()
        self.sockets: dict[str, Any] = {}  # connection id -> consumer, open on this process
        self.ended: list[dict[str, Any]] = []  # final rows waiting for the next flush
        self.connections_total = 0
        # Counters of sockets already closed (the process totals go on after a socket ends).
        self.closed = {"messages_received": 0, "messages_sent": 0, "errors": 0}
        # Per connection type: frames sent, bytes sent, bytes received, of closed sockets, and
        # what Prometheus has been told so far.
        self.closed_volume: dict[str, list[int]] = {}
        self.reported: dict[str, tuple[int, int, int]] = {}
        self.latency_sum = 0.0  # heartbeat round trips since the last snapshot
        self.latency_count = 0
        self.last_prune = 0.0
        # Since when every flush has been written (None: the last one failed); the last write.
        self.writing_since: float | None = None
        self.last_written = 0.0
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
        for key in self.closed:
            self.closed[key] += row[key]
        volume = self.closed_volume.setdefault(str(consumer.connection_type), [0, 0, 0])
        volume[0] += row["messages_sent"]
        volume[1] += row["bytes_sent"]
        volume[2] += row["bytes_received"]

    def heartbeat(self, latency_ms: float) -> None:
        self.latency_sum += latency_ms
        self.latency_count += 1

    # -- flushing ---------------------------------------------------------------------------

    def row_of(self, consumer: Any) -> dict[str, Any]:
        return {**self._identity(consumer), **counters(consumer)}

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
        # While the process holds sockets (and once more after the last one closed). An idle
        # process writes nothing; it leaves the live set and its totals leave the global
        # figures until its next socket (docs/metrics.md).
        failures = 0
        while self.sockets or self.ended:
            await asyncio.sleep(settings.METRICS_FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception as error:
                failures += 1
                if failures == 1:
                    logger.exception("writing connection metrics failed; retrying at each flush")
                else:  # the same outage: one traceback is enough
                    logger.warning(
                        "writing connection metrics failed %d times: %s", failures, error
                    )
            else:
                if failures:
                    logger.info("connection metrics written again after %d failures", failures)
                failures = 0

    async def flush(self) -> None:
        """Aggregate in memory; write a bounded batch: new sockets (at most NEW_PER_FLUSH),
        closed ones, and the counters of at most REFRESH_PER_FLUSH open sockets whose row is
        older than METRICS_LIVE_REFRESH_SECONDS. A broadcast changes every socket's counters:
        rewriting them all at every flush stalled a 1,000-member fan-out (docs/metrics.md)."""
        new: list[Any] = []  # consumers
        changed: list[dict[str, Any]] = []
        written: list[Any] = []  # the socket states of `new` and `changed`
        by_type: dict[str, dict[str, Any]] = {}
        totals = dict(self.closed)
        volume = {kind: list(values) for kind, values in self.closed_volume.items()}
        now = self.clock()
        stale = now - settings.METRICS_LIVE_REFRESH_SECONDS
        for cid, consumer in list(self.sockets.items()):
            io = consumer.io
            kind = str(consumer.connection_type)
            figures = by_type.get(kind)
            if figures is None:
                figures = by_type[kind] = dict(EMPTY_TYPE_FIGURES)
            figures["active"] += 1
            figures["messages_received"] += io.messages_in
            figures["messages_sent"] += io.messages_out
            figures["errors"] += io.errors
            if io.latency_count:
                figures["latency_sum_ms"] += io.latency_sum / io.latency_count
                figures["latency_count"] += 1
            sums = volume.setdefault(kind, [0, 0, 0])
            sums[0] += io.messages_out
            sums[1] += io.bytes_out
            sums[2] += io.bytes_in
            if not io.flushed:  # no row yet
                if len(new) < self.NEW_PER_FLUSH:
                    new.append(consumer)  # its row is built in chunks while writing
                    written.append(io)
            elif io.flushed < stale and len(changed) < self.REFRESH_PER_FLUSH:
                changed.append({"connection_id": cid, **counters(consumer)})
                written.append(io)
        for figures in by_type.values():
            for key in ("messages_received", "messages_sent", "errors"):
                totals[key] += figures[key]
        self._report_volume(volume)
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
        prune = now - self.last_prune > 60
        if prune:
            self.last_prune = now
        window = live_window().total_seconds()
        if self.writing_since is not None and now - self.last_written > window:
            self.writing_since = None  # idle or stalled that long: others may not have written
        # Other processes are declared lost only once this one has written for a whole window:
        # after the database was away every snapshot is old, the live processes' included.
        sweep = self.writing_since is not None and now - self.writing_since >= window
        try:
            await db(write_batch, lane=CATCH_UP)(
                new, changed, ended, snapshot, prune, self.row_of, sweep=sweep
            )
        except Exception as error:
            self.writing_since = None
            self._keep_unwritten(ended, isinstance(error, (OperationalError, InterfaceError)))
            raise
        self.last_written = now
        if self.writing_since is None:
            self.writing_since = now
        for io in written:
            io.flushed = now

    def _keep_unwritten(self, ended: list[dict[str, Any]], database_away: bool) -> None:
        """Final rows of a flush that failed, back in the queue. While the database is away
        (connection lost or refused, a deadlock) they wait for it, up to MAX_UNWRITTEN rows;
        after any other error they get one more attempt, not forever: a batch that cannot be
        written must not stop every later flush."""
        if not database_away:
            ended = [row for row in ended if not row.get("retried")]
            for row in ended:
                row["retried"] = True
        self.ended = ended + self.ended
        excess = len(self.ended) - self.MAX_UNWRITTEN
        if excess > 0:
            logger.warning(
                "dropping %d closed sessions' final rows the database never took", excess
            )
            del self.ended[:excess]

    def _report_volume(self, volume: dict[str, list[int]]) -> None:
        """Frames and bytes sent and received go to Prometheus here, as deltas per connection
        type, instead of three counter increments per frame on the delivery path."""
        for kind, (messages_sent, bytes_sent, bytes_received) in volume.items():
            before = self.reported.get(kind, (0, 0, 0))
            instruments.MESSAGES_SENT.labels(kind).inc(max(0, messages_sent - before[0]))
            instruments.BYTES_SENT.labels(kind).inc(max(0, bytes_sent - before[1]))
            instruments.BYTES_RECEIVED.labels(kind).inc(max(0, bytes_received - before[2]))
            self.reported[kind] = (messages_sent, bytes_sent, bytes_received)


@transaction.atomic
def write_batch(
    new: list[Any],
    changed: list[dict[str, Any]],
    ended: list[dict[str, Any]],
    snapshot: dict[str, Any],
    prune: bool = False,
    row_of: Any = None,
    *,
    sweep: bool = True,
) -> None:
    """One flush of one process, in one transaction. `new` are the sockets that need a row;
    their rows are built (by `row_of`) a chunk at a time, so a storm's hundreds of new sockets
    never exist as rows all at once (S3 measures what the flush leaves in memory). `sweep`:
    end the open sessions of processes that stopped snapshotting."""
    now = timezone.now()
    for row in ended:
        row.pop("retried", None)
    for start in range(0, len(new), INSERT_CHUNK):
        _insert(_known_users([row_of(c) for c in new[start : start + INSERT_CHUNK]]), now)
    # Plain statements of plain tuples: building a CASE expression per row (bulk_update) for a
    # few hundred closed sockets held the GIL for tens of milliseconds and stalled fan-out in
    # the same process (docs/performance.md, S2).
    for start in range(0, len(ended), INSERT_CHUNK):
        _finish(_known_users(ended[start : start + INSERT_CHUNK]), now)
    for start in range(0, len(changed), INSERT_CHUNK):
        _refresh(changed[start : start + INSERT_CHUNK], now)
    MetricsSnapshot.objects.create(taken_at=now, **snapshot)
    if sweep:
        # Sessions of processes that stopped snapshotting (killed, crashed) are over.
        alive = live_processes(now)
        ConnectionSession.objects.filter(ended_at__isnull=True).exclude(process__in=alive).update(
            ended_at=now, end_reason="process_lost"
        )
    if prune:
        prune_history(now)


INSERT_CHUNK = 100


def _known_users(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user deleted while (or since) connected: the session stays, without the link."""
    wanted = {row["user_id"] for row in rows if row.get("user_id") is not None}
    if wanted:
        present = set(get_user_model().objects.filter(pk__in=wanted).values_list("pk", flat=True))
        for row in rows:
            if row.get("user_id") not in present:
                row["user_id"] = None
    return rows


INSERT_COLUMNS = (
    "connection_id",
    "user_id",
    "username",
    "connection_type",
    "trip_id",
    "process",
    "client_address",
    "connected_at",
    "last_seen",
    *COUNTER_FIELDS,
    "close_code",
    "end_reason",
)


def _insert(rows: list[dict[str, Any]], now: datetime) -> None:
    """New session rows in one executemany of plain tuples: a connect storm's hundreds of rows
    per flush without building a model instance for each (S3 measures the memory)."""
    _write(rows, now, INSERT_COLUMNS, "DO NOTHING")


FINAL_COLUMNS = (*COUNTER_FIELDS, "last_seen", "ended_at", "close_code", "end_reason")


def _finish(rows: list[dict[str, Any]], now: datetime) -> None:
    """Closed sockets' final rows: their counters and how they ended. A socket that opened and
    closed between two flushes has no row yet and gets one."""
    ops = connection.ops
    quoted = [ops.quote_name(c) for c in FINAL_COLUMNS]
    updates = ", ".join(f"{name} = excluded.{name}" for name in quoted)
    _write(rows, now, (*INSERT_COLUMNS, "ended_at"), f"DO UPDATE SET {updates}")


def _refresh(rows: list[dict[str, Any]], now: datetime) -> None:
    """Open sockets' counters (a socket whose row is not written yet is left for later)."""
    ops = connection.ops
    columns = (*COUNTER_FIELDS, "last_seen")
    table = ops.quote_name(ConnectionSession._meta.db_table)
    assignments = ", ".join(f"{ops.quote_name(c)} = %s" for c in columns)
    sql = f"UPDATE {table} SET {assignments} WHERE {ops.quote_name('connection_id')} = %s"
    params = [(*_values({**row, "last_seen": now}, columns), row["connection_id"]) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


_DATED = frozenset({"connected_at", "last_seen", "last_activity", "ended_at"})


def _values(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    adapt = connection.ops.adapt_datetimefield_value
    return tuple(adapt(row[c]) if c in _DATED else row[c] for c in columns)


def _write(
    rows: list[dict[str, Any]], now: datetime, columns: tuple[str, ...], on_conflict: str
) -> None:
    if not rows:
        return
    ops = connection.ops
    table = ops.quote_name(ConnectionSession._meta.db_table)
    names = ", ".join(ops.quote_name(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({ops.quote_name('connection_id')}) {on_conflict}"
    )
    defaults = {"last_seen": now, "close_code": None, "end_reason": "", "ended_at": None}
    params = [_values({**defaults, **row, "last_seen": now}, columns) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def live_window() -> timedelta:
    """A process is live while its latest snapshot is this recent (three flushes and slack)."""
    return timedelta(seconds=3 * settings.METRICS_FLUSH_SECONDS + 5)


def live_processes(now: datetime | None = None) -> list[str]:
    now = now or timezone.now()
    return list(
        MetricsSnapshot.objects.filter(taken_at__gte=now - live_window())
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
