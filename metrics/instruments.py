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
