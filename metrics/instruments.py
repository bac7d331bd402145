"""Every Prometheus instrument of the service, declared once. Label values come from closed sets
(connection type, message type from the protocol registry, error code), never from client input."""

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

CONNECTIONS_OPEN = Gauge(
    "tripsage_ws_connections_open",
    "Authenticated WebSocket connections currently open in this process.",
    ["connection_type"],
)
CONNECTIONS_OPENING = Gauge(
    "tripsage_ws_connections_opening",
    "WebSocket connections of this process between connect and connection.established (or "
    "their end): what REALTIME_MAX_OPENING_SOCKETS bounds (realtime.connect_gate).",
)
CONNECTIONS_WAITING = Gauge(
    "tripsage_ws_connections_waiting",
    "WebSocket connects of this process waiting for a place among the opening sockets, their "
    "handshake unanswered (REALTIME_OPENING_WAIT_SECONDS, realtime.connect_gate).",
)
MESSAGES_RECEIVED = Counter(
    "tripsage_ws_messages_received_total",
    "Valid client messages received, by connection type and message type.",
    ["connection_type", "message_type"],
)
ERRORS = Counter(
    "tripsage_ws_errors_total",
    "Error envelopes sent to clients, by connection type and error code.",
    ["connection_type", "code"],
)
HEARTBEAT_LATENCY = Histogram(
    "tripsage_ws_heartbeat_latency_seconds",
    "Round trip from the server's ping to the client's pong.",
    ["connection_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LAYER_DROPPED = Counter(
    "tripsage_layer_dropped_total",
    "Channel layer messages dropped because a channel's inbox was full (repaired by seq).",
)
LAYER_RECONNECTS = Counter(
    "tripsage_layer_reconnects_total",
    "Times the channel layer's Redis subscription was lost and re-established.",
)
PUBLISH_FAILURES = Counter(
    "tripsage_publish_failures_total",
    "Publishes after commit that failed or timed out (PUBLISH_TIMEOUT_SECONDS), by the "
    "connection type of the group; the sockets catch up from the log.",
    ["connection_type"],
)
STREAM_CATCH_UPS = Counter(
    "tripsage_stream_catch_ups_total",
    "Sockets found behind their stream's head a full check interval after it was read, and "
    "sent what they missed from the log (realtime.convergence).",
    ["connection_type"],
)
LAYER_HELD = Counter(
    "tripsage_layer_held_total",
    "Group events that arrived ahead of their seq and were held by the channel layer, by how "
    "the hold ended: the missing ones came (reordered) or the wait ran out (released).",
    ["outcome"],
)
SLOW_CONSUMER_CLOSES = Counter(
    "tripsage_ws_slow_consumer_closes_total",
    "Sockets closed with 4009 because the client stopped reading (too many unacknowledged bytes).",
    ["connection_type"],
)
RATE_LIMIT_REFUSALS = Counter(
    "tripsage_rate_limit_refusals_total",
    "Refused by a limit: messages, auth.refresh, new connections per address, concurrent "
    "sockets per user, connects while the process has too many sockets opening "
    "(limit `overloaded`).",
    ["connection_type", "limit"],
)
RATE_LIMITER_FALLBACKS = Counter(
    "tripsage_rate_limiter_fallbacks_total",
    "Rate-limit checks made in this process because Redis did not answer.",
)
MESSAGES_SENT = Counter(
    "tripsage_ws_messages_sent_total",
    "Frames sent to clients, by connection type.",
    ["connection_type"],
)
BYTES_RECEIVED = Counter(
    "tripsage_ws_received_bytes_total",
    "Bytes of client frames, by connection type.",
    ["connection_type"],
)
BYTES_SENT = Counter(
    "tripsage_ws_sent_bytes_total",
    "Bytes of frames sent to clients, by connection type.",
    ["connection_type"],
)
FANOUT_LATENCY = Histogram(
    "tripsage_fanout_latency_seconds",
    "From the commit that published an event to its send on a socket, by connection type.",
    ["connection_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REPLAYS = Counter(
    "tripsage_ws_replays_total",
    "Events sent again from the database: resume replays and gap fills, by connection type.",
    ["connection_type", "kind"],
)
CONFLICTS = Counter(
    "tripsage_conflicts_total",
    "Edit conflicts detected and resolved.",
    ["event"],
)


# Writes taken by direct writers in this process (realtime.direct), by outcome: written whole;
# written in part (the kernel's buffer was full, Twisted holds the rest); declined (something was
# buffered or the connection was not plainly open: the caller used the ASGI send). Plain
# integers, counted on the hot path and read at scrape time.
DIRECT_WRITE_OUTCOMES = ("sent", "partial", "declined")
direct_write_counts = [0, 0, 0]


class _DirectWrites(Collector):
    """tripsage_ws_direct_writes_total: frames written straight to the socket (realtime.direct),
    read from the writer's plain counters at scrape time (an instrument per write would cost
    more than the write saves)."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tripsage_ws_direct_writes",
            "Frames offered to direct writes under daphne, by outcome: sent whole, sent in part "
            "(the rest buffered by Twisted), declined (sent through the ASGI send instead).",
            labels=["outcome"],
        )
        for outcome, count in zip(DIRECT_WRITE_OUTCOMES, direct_write_counts, strict=True):
            family.add_metric([outcome], count)
        yield family


REGISTRY.register(_DirectWrites())

# Why a connection got no direct writer (realtime.direct) and every frame of it went through the
# ASGI send. Counted once per connection, when it opens.
DIRECT_WRITES_OFF_REASONS = ("setting", "server", "version", "transport", "options", "attribute")
DIRECT_WRITES_DISABLED = Counter(
    "tripsage_ws_direct_writes_disabled_total",
    "Connections without direct writes, by reason: setting (REALTIME_DIRECT_WRITES off), server "
    "(not daphne's ASGI send), version (daphne, Twisted, autobahn or txaio other than the tested "
    "versions), transport (TLS), options (autobahn options the writer does not reproduce), "
    "attribute (a daphne, autobahn or Twisted attribute it reads is missing).",
    ["reason"],
)
for _reason in DIRECT_WRITES_OFF_REASONS:
    DIRECT_WRITES_DISABLED.labels(reason=_reason)  # every reason scraped from the start, at 0
