"""Every group name, made here and parsed back here: one registry for publishers and sockets.

Channels group names allow ASCII letters, digits, '-', '_' and '.', and no ':'.
"""

from __future__ import annotations

# The group every process's connection registry listens on (realtime.connections): user
# revocations and operators' disconnects.
USERS_GROUP = "realtime-users"

# Group name prefix -> the connection type (protocol.ConnectionType value) whose sockets join
# it: the fan-out layer labels its latency metric with it.
_KINDS = {
    "trip": "trip_collaboration",
    "chat": "chat",
    "agents": "agent_status",
    "notifications": "notifications",
}


def trip_group(trip_id: int | str) -> str:
    """A trip's edits, conflicts, membership and presence: its trip sockets."""
    return f"trip-{trip_id}"


def chat_group(trip_id: int | str) -> str:
    """A trip's chat messages and typing indicators: its chat sockets."""
    return f"chat-{trip_id}"


def user_notifications_group(user_id: int | str) -> str:
    """One user's notifications, on every socket of theirs."""
    return f"notifications-{user_id}"


def agents_user_group(user_id: int | str) -> str:
    """The agent runs a user owns."""
    return f"agents-user-{user_id}"


def agents_trip_group(trip_id: int | str) -> str:
    """The agent runs attached to a trip, for its members."""
    return f"agents-trip-{trip_id}"


def connection_type_of(group: str) -> str | None:
    """The connection type whose sockets join `group`, or None for a group of no socket type
    (USERS_GROUP, test groups)."""
    return _KINDS.get(group.split("-", 1)[0])
