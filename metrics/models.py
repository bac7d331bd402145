"""Connection history and metrics snapshots, written in batches by realtime.collector (never once
per message)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ConnectionSession(models.Model):
    """One socket: who, what, when, its counters (the seed's ConnectionMetrics), and how it
    ended. Open sessions are rows with no `ended_at`; `last_seen` is the holding process's last
    flush, so a process that died leaves rows that stop being live."""

    connection_id = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    username = models.CharField(max_length=150)
    connection_type = models.CharField(max_length=32)
    trip_id = models.PositiveBigIntegerField(null=True, blank=True)
    process = models.CharField(max_length=64)
    client_address = models.CharField(max_length=64, blank=True)
    connected_at = models.DateTimeField()
    last_activity = models.DateTimeField()
    last_seen = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    close_code = models.PositiveIntegerField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True)
    # An operator asked for this socket to be closed (metrics.services.request_disconnect): its
    # process closes it on the message, or at its next check if the message was lost.
    disconnect_requested_at = models.DateTimeField(null=True, blank=True)
    messages_received = models.PositiveBigIntegerField(default=0)
    messages_sent = models.PositiveBigIntegerField(default=0)
    bytes_received = models.PositiveBigIntegerField(default=0)
    bytes_sent = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    reconnect_attempts = models.PositiveIntegerField(default=0)
    average_latency_ms = models.FloatField(null=True, blank=True)
    peak_latency_ms = models.FloatField(null=True, blank=True)
    connection_drops = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-connected_at"]
        indexes = [
            models.Index(fields=["ended_at", "last_seen"], name="session_live"),
            models.Index(fields=["connected_at"], name="session_connected"),
            # The few sessions an operator asked to close, which every process re-checks.
            models.Index(
                fields=["disconnect_requested_at"],
                condition=models.Q(disconnect_requested_at__isnull=False),
                name="session_disconnect_requested",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection_type} {self.username} {self.connection_id[:8]}"


class LiveConnection(ConnectionSession):
    """The admin's view of sessions still open on a live process."""

    class Meta:
        proxy = True
        verbose_name = "live connection"


class MetricsSnapshot(models.Model):
    """One process's figures at one flush: the dashboard's history and the global figures (the
    latest snapshot of every live process, summed)."""

    process = models.CharField(max_length=64)
    taken_at = models.DateTimeField(db_index=True)
    active_connections = models.PositiveIntegerField()
    connections_total = models.PositiveBigIntegerField()  # opened since the process started
    messages_received = models.PositiveBigIntegerField()  # cumulative, this process
    messages_sent = models.PositiveBigIntegerField()
    errors = models.PositiveBigIntegerField()
    latency_sum_ms = models.FloatField(default=0)  # heartbeat round trips in this interval
    latency_count = models.PositiveIntegerField(default=0)
    by_type = models.JSONField(default=dict)  # type -> {active, messages_received, ...}
    started_at = models.DateTimeField()

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"{self.process} @ {self.taken_at:%H:%M:%S}"
