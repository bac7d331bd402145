"""Reads for the metrics surfaces: the seed's GlobalMetrics across every live process, figures
by connection type, history from the snapshots, and one socket's ConnectionMetrics."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from metrics.collector import live_processes
from metrics.models import ConnectionSession, MetricsSnapshot
from protocol import ConnectionType, iso

BUCKET_SECONDS = 5


def _latest_per_process(snapshots: list[MetricsSnapshot]) -> dict[str, MetricsSnapshot]:
    latest: dict[str, MetricsSnapshot] = {}
    for snapshot in snapshots:  # newest first
        latest.setdefault(snapshot.process, snapshot)
    return latest


def global_metrics(*, history_minutes: int = 30) -> dict[str, Any]:
    now = timezone.now()
    alive = set(live_processes(now))
    since = now - timedelta(minutes=history_minutes)
    snapshots = list(
        MetricsSnapshot.objects.filter(taken_at__gte=since).order_by("-taken_at", "-id")
    )
    latest = {p: s for p, s in _latest_per_process(snapshots).items() if p in alive}
    current = list(latest.values())

    by_type: dict[str, dict[str, Any]] = {}
    for kind in ConnectionType:
        sums = {"active": 0, "messages_sent": 0, "messages_received": 0, "errors": 0}
        latency_sum = latency_count = 0.0
        for snapshot in current:
            figures = snapshot.by_type.get(str(kind), {})
            for key in sums:
                sums[key] += figures.get(key, 0)
            latency_sum += figures.get("latency_sum_ms", 0.0)
            latency_count += figures.get("latency_count", 0)
        by_type[str(kind)] = {
            "active_connections": sums["active"],
            "messages_sent": sums["messages_sent"],
            "messages_received": sums["messages_received"],
            "errors": sums["errors"],
            "average_latency_ms": round(latency_sum / latency_count, 2) if latency_count else None,
        }

    history = _history(snapshots, now, since)
    recent = [point for point in history if point["at_dt"] >= now - timedelta(minutes=1)]
    # The mean of the last minute's bucket rates (each over the time its counts cover).
    per_minute = sum(p["messages_per_minute"] for p in recent) / len(recent) if recent else 0.0
    errors = sum(p["errors"] for p in recent)
    received = sum(p["received"] for p in recent)
    latency = [
        s.latency_sum_ms / s.latency_count
        for s in snapshots
        if s.latency_count and s.taken_at >= now - timedelta(minutes=5)
    ]
    return {
        "global": {
            "totalConnections": sum(s.connections_total for s in current),
            "activeConnections": sum(s.active_connections for s in current),
            "totalMessagesSent": sum(s.messages_sent for s in current),
            "totalMessagesReceived": sum(s.messages_received for s in current),
            "totalErrors": sum(s.errors for s in current),
            "averageLatency": round(sum(latency) / len(latency), 2) if latency else None,
            "uptime": int(min(s.started_at for s in current).timestamp() * 1000)
            if current
            else None,
        },
        "by_type": by_type,
        "rates": {
            "messages_per_minute": round(per_minute, 1),
            "error_rate_percent": round(100 * errors / received, 2) if received else 0.0,
        },
        "processes": [
            {
                "process": s.process,
                "taken_at": iso(s.taken_at),
                "active_connections": s.active_connections,
            }
            for s in current
        ],
        "history": [
            {k: v for k, v in p.items() if k not in ("at_dt", "messages", "errors", "received")}
            for p in history
        ],
    }


def _history(
    snapshots: list[MetricsSnapshot], now: datetime, since: datetime
) -> list[dict[str, Any]]:
    """5-second buckets, oldest first: connections (the latest per process, summed), messages
    per minute and errors per minute (from each process's cumulative counters), latency."""
    buckets: dict[int, dict[str, MetricsSnapshot]] = defaultdict(dict)
    for snapshot in reversed(snapshots):  # oldest first: the bucket keeps each process's last
        key = int(snapshot.taken_at.timestamp()) // BUCKET_SECONDS
        buckets[key][snapshot.process] = snapshot
    points = []
    previous: dict[str, MetricsSnapshot] = {}
    for key in sorted(buckets):
        members = buckets[key]
        sent = received = errors = 0
        message_rate = error_rate = 0.0  # per second, summed over the processes
        latency_sum = latency_count = 0.0
        for process, snapshot in members.items():
            before = previous.get(process)
            if before is not None and snapshot.started_at == before.started_at:
                d_sent = max(0, snapshot.messages_sent - before.messages_sent)
                d_received = max(0, snapshot.messages_received - before.messages_received)
                d_errors = max(0, snapshot.errors - before.errors)
                since_last = before.taken_at
            elif snapshot.started_at >= since:
                # A process's first snapshot in view, and it started in view: all of its
                # counts happened since it started.
                d_sent, d_received = snapshot.messages_sent, snapshot.messages_received
                d_errors, since_last = snapshot.errors, snapshot.started_at
            else:
                d_sent = d_received = d_errors = 0
                since_last = snapshot.taken_at
            sent, received, errors = sent + d_sent, received + d_received, errors + d_errors
            # Over the time the counts really cover (a flush can come late or a bucket be
            # skipped), not over the bucket's nominal 5 s.
            elapsed = max(1.0, (snapshot.taken_at - since_last).total_seconds())
            message_rate += (d_sent + d_received) / elapsed
            error_rate += d_errors / elapsed
            latency_sum += snapshot.latency_sum_ms
            latency_count += snapshot.latency_count
            previous[process] = snapshot
        at = datetime.fromtimestamp(key * BUCKET_SECONDS, tz=now.tzinfo)
        points.append(
            {
                "at": iso(at),
                "at_dt": at,
                "active_connections": sum(s.active_connections for s in members.values()),
                "messages_per_minute": round(message_rate * 60, 1),
                "average_latency_ms": round(latency_sum / latency_count, 2)
                if latency_count
                else None,
                "errors_per_minute": round(error_rate * 60, 1),
                "messages": sent + received,
                "errors": errors,
                "received": received,
            }
        )
    return points


def _epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _ms(latency: float | None) -> float | None:
    return None if latency is None else round(latency, 2)


def connection_metrics(*, connection_id: str) -> dict[str, Any] | None:
    """One socket's figures under the seed's ConnectionMetrics names, from its side (its
    `messagesSent` are the frames the server sent), as of its row's last write (`updatedAt`:
    the holding process's flush, every METRICS_LIVE_REFRESH_SECONDS at most), and what the row
    adds: who, where, and how the socket ended. None for no such socket."""
    row = ConnectionSession.objects.filter(connection_id=connection_id).first()
    if row is None:
        return None
    return {
        "connectionId": row.connection_id,
        "userId": None if row.user_id is None else str(row.user_id),
        "connectionType": row.connection_type,
        "connectedAt": _epoch_ms(row.connected_at),
        "lastActivity": _epoch_ms(row.last_activity),
        "messagesSent": row.messages_sent,
        "messagesReceived": row.messages_received,
        "bytesSent": row.bytes_sent,
        "bytesReceived": row.bytes_received,
        "errors": row.errors,
        "reconnectAttempts": row.reconnect_attempts,
        "averageLatency": _ms(row.average_latency_ms),
        "peakLatency": _ms(row.peak_latency_ms),
        "connectionDrops": row.connection_drops,
        "username": row.username,
        "tripId": row.trip_id,
        "process": row.process,
        "open": row.ended_at is None,
        "updatedAt": _epoch_ms(row.last_seen),
        "endedAt": _epoch_ms(row.ended_at),
        "closeCode": row.close_code,
        "endReason": row.end_reason,
    }


def disconnects_requested(*, since: datetime) -> list[str]:
    """The sockets an operator asked to close since `since`, on any process (realtime.connections
    re-checks its own among them): a few rows, read through a partial index, where asking about
    each of a process's sockets by id built a query with one parameter per socket."""
    return list(
        ConnectionSession.objects.filter(disconnect_requested_at__gte=since).values_list(
            "connection_id", flat=True
        )
    )
