"""Every Prometheus instrument of the service, declared once. Label values come from closed sets
(connection type, message type from the protocol registry, error code), never from client input."""

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS_OPEN = Gauge(
    "tripsage_ws_connections_open",
    "Authenticated WebSocket connections currently open in this process.",
    ["connection_type"],
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
SLOW_CONSUMER_CLOSES = Counter(
    "tripsage_ws_slow_consumer_closes_total",
    "Sockets closed with 4009 because the client stopped reading (too many unacknowledged bytes).",
    ["connection_type"],
)
RATE_LIMIT_REFUSALS = Counter(
    "tripsage_rate_limit_refusals_total",
    "Refused by a rate limit: messages, new connections per address, concurrent sockets per user.",
    ["connection_type", "limit"],
)
RATE_LIMITER_FALLBACKS = Counter(
    "tripsage_rate_limiter_fallbacks_total",
    "Rate-limit checks made in this process because Redis did not answer.",
)
