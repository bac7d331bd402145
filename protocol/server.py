"""Every message the server sends: a schema per type, who sends it, and the one checked builder.

`server_message` checks what it builds against these schemas when PROTOCOL_CHECK_SERVER_MESSAGES
is on. docs/protocol.md's "Server messages" tables list the same types and fields
(tests/test_protocol_docs.py holds the two together), and the suite checks every frame a test
receives against them (tests/wsclient.py, FrameCheck).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from protocol.codes import ConnectionType, TripField
from protocol.objects import (
    AgentRun,
    ChatMessage,
    Collaborator,
    Conflict,
    ConnectionLimits,
    Count,
    EditingEntry,
    ErrorBody,
    FieldValue,
    HexId,
    Instant,
    Notification,
    RefreshBucket,
    RequestId,
    Timestamp,
    TripRole,
    TripState,
    UserRef,
    UuidText,
    WireObject,
    new_id,
    now_iso,
)


class ServerMessage(BaseModel):
    """The envelope every server message shares."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    type_name: ClassVar[str]

    id: HexId
    type: str
    timestamp: Timestamp

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        annotation = cls.model_fields["type"].annotation
        if get_origin(annotation) is Literal:  # a concrete message type, not a base
            cls.type_name = get_args(annotation)[0]


class Reply(ServerMessage):
    """The answer to a client message: `request_id` is that message's `id`, absent without one."""

    request_id: RequestId | None = None


# -- every connection type --------------------------------------------------------------------


class ConnectionEstablished(Reply):
    type: Literal["connection.established"]
    connection_id: HexId
    connection_type: ConnectionType = Field(strict=False)
    user: UserRef
    heartbeat_interval: float
    token_expires_at: Instant
    limits: ConnectionLimits


class RateLimitStatusReport(Reply):
    """Right after `connection.established`, when the budget runs low, and on request."""

    type: Literal["rate_limit_status"]
    current_usage: Count
    limit: Count
    remaining: Count
    reset_at: Instant
    window_seconds: Count
    burst: Count
    burst_remaining: Count
    burst_reset_at: Instant
    auth_refresh: RefreshBucket


class ServerPing(ServerMessage):
    type: Literal["ping"]


class PongReply(Reply):
    type: Literal["pong"]


class AuthRefreshed(Reply):
    type: Literal["auth.refreshed"]
    token_expires_at: Instant


class ErrorEnvelope(ServerMessage):
    """The seed's envelope: `request_id` always present, null when the offending frame had no
    usable `id`."""

    type: Literal["error"]
    error: ErrorBody
    request_id: RequestId | None


# -- trip collaboration -----------------------------------------------------------------------


class TripAck(Reply):
    """Answers `trip.update` and `conflict.resolve` (collaboration.services.MutationResult)."""

    type: Literal["ack"]
    status: Literal["applied", "merged", "conflict", "duplicate", "already_resolved"]
    original_status: Literal["applied", "merged", "conflict", "already_resolved"]
    update_id: UuidText
    field: TripField
    value: FieldValue
    version: Count
    seq: Count
    conflict_id: int | None


class SnapshotState(WireObject):
    """What a socket needs to start from: `trip.snapshot`, and `resync.required`'s `snapshot`."""

    trip: TripState
    seq: Count
    role: TripRole
    conflicts: list[Conflict]
    collaborators: list[Collaborator]
    collaborator_count: Count
    collaborators_truncated: bool
    editing: list[EditingEntry]


class TripSnapshot(ServerMessage, SnapshotState):
    type: Literal["trip.snapshot"]
    presence_version: Count


class TripUpdated(ServerMessage):
    type: Literal["trip.updated"]
    seq: Count
    trip_id: int
    update_id: UuidText
    field: TripField
    value: FieldValue
    version: Count
    by: UserRef
    # An edit, a stale edit merged with the changes since its base (`value` is the merged
    # text), or a conflict's resolution.
    source: Literal["edit", "merge", "resolution"]


class ConflictDetected(ServerMessage):
    type: Literal["conflict.detected"]
    seq: Count
    trip_id: int
    conflict: Conflict


class ConflictResolved(ServerMessage):
    type: Literal["conflict.resolved"]
    seq: Count
    trip_id: int
    conflict: Conflict


class MemberUpdated(ServerMessage):
    type: Literal["member.updated"]
    seq: Count
    trip_id: int
    user: UserRef
    role: TripRole


class MemberRemoved(ServerMessage):
    type: Literal["member.removed"]
    seq: Count
    trip_id: int
    user: UserRef


class PresenceUpdate(ServerMessage):
    type: Literal["presence.update"]
    version: Count
    collaborators: list[Collaborator]
    collaborator_count: Count
    collaborators_truncated: bool


class EditingUpdate(ServerMessage):
    type: Literal["editing.update"]
    version: Count
    editing: list[EditingEntry]


class ResumeComplete(Reply):
    """The end of a `resume`'s replay, on trip and chat sockets."""

    type: Literal["resume.complete"]
    last_seq: Count
    replayed: Count
    seq: Count


ResyncReason = Literal["too_old", "unknown_seq"]


class TripResyncRequired(Reply):
    type: Literal["resync.required"]
    reason: ResyncReason
    last_seq: Count
    snapshot: SnapshotState


class EchoReply(Reply):
    type: Literal["echo"]
    data: JsonValue


# -- chat -------------------------------------------------------------------------------------


class ChatHistory(ServerMessage):
    type: Literal["chat.history"]
    trip_id: int
    messages: list[ChatMessage]
    seq: Count
    has_more: bool


class ChatAck(Reply):
    type: Literal["ack"]
    status: Literal["posted", "duplicate"]
    seq: Count
    message: ChatMessage


class ChatMessageEvent(ServerMessage):
    type: Literal["chat.message"]
    seq: Count
    message: ChatMessage


class TypingUpdate(ServerMessage):
    type: Literal["typing.update"]
    trip_id: int
    user: UserRef
    typing: bool
    expires_at: Timestamp | None  # with milliseconds, unlike other moments; None when stopped


class ChatResyncRequired(Reply):
    """The history already sent is the fresh start: no snapshot, only the chat's `seq`."""

    type: Literal["resync.required"]
    reason: ResyncReason
    last_seq: Count
    seq: Count


# -- notifications ----------------------------------------------------------------------------


class NotificationsUnread(ServerMessage):
    type: Literal["notifications.unread"]
    notifications: list[Notification]
    unread_count: Count


class NotificationsReadAck(Reply):
    type: Literal["ack"]
    ids: list[int]
    unread_count: Count


class NotificationCreated(ServerMessage):
    type: Literal["notification.created"]
    notification: Notification
    unread_count: Count


class NotificationsReadEvent(ServerMessage):
    type: Literal["notification.read"]
    ids: Annotated[list[int], Field(min_length=1)]
    unread_count: Count


# -- agent status -----------------------------------------------------------------------------


class AgentRuns(ServerMessage):
    type: Literal["agent.runs"]
    runs: list[AgentRun]


class AgentCancelAck(Reply):
    type: Literal["ack"]
    run: AgentRun


class AgentRunEvent(ServerMessage):
    type: Literal["agent.run"]
    run: AgentRun


# -- the registry -----------------------------------------------------------------------------

COMMON_SERVER_MESSAGES: tuple[type[ServerMessage], ...] = (
    ConnectionEstablished,
    RateLimitStatusReport,
    ServerPing,
    PongReply,
    AuthRefreshed,
    ErrorEnvelope,
)
# What each connection type sends besides the common messages.
SERVER_MESSAGES: dict[ConnectionType, tuple[type[ServerMessage], ...]] = {
    ConnectionType.TRIP_COLLABORATION: (
        TripSnapshot,
        TripAck,
        TripUpdated,
        ConflictDetected,
        ConflictResolved,
        MemberUpdated,
        MemberRemoved,
        PresenceUpdate,
        EditingUpdate,
        ResumeComplete,
        TripResyncRequired,
        EchoReply,
    ),
    ConnectionType.CHAT: (
        ChatHistory,
        ChatAck,
        ChatMessageEvent,
        TypingUpdate,
        ResumeComplete,
        ChatResyncRequired,
    ),
    ConnectionType.NOTIFICATIONS: (
        NotificationsUnread,
        NotificationsReadAck,
        NotificationCreated,
        NotificationsReadEvent,
    ),
    ConnectionType.AGENT_STATUS: (AgentRuns, AgentCancelAck, AgentRunEvent),
}


def _by_type(models: tuple[type[ServerMessage], ...]) -> dict[str, tuple[type[ServerMessage], ...]]:
    registry: dict[str, tuple[type[ServerMessage], ...]] = {}
    for model in models:
        if model not in registry.get(model.type_name, ()):
            registry[model.type_name] = (*registry.get(model.type_name, ()), model)
    return registry


# type -> its schemas: one each, except `ack` and `resync.required`, whose shape depends on the
# connection type that sends them.
SERVER_MESSAGE_TYPES = _by_type(
    COMMON_SERVER_MESSAGES + tuple(m for ms in SERVER_MESSAGES.values() for m in ms)
)
_TYPES_OF_CONNECTION = {
    kind: _by_type(COMMON_SERVER_MESSAGES + models) for kind, models in SERVER_MESSAGES.items()
}


class InvalidServerMessage(Exception):
    """A server message that fits no schema of its type: a bug of ours, never the client's."""


def field_name(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a dotted field name (`trip.fields.budget`), safe to echo."""
    return safe_text(".".join(str(part) for part in loc)) or "(message)"


def check_server_message(
    message: Any, connection_type: ConnectionType | None = None
) -> type[ServerMessage]:
    """The schema `message` fits (among those `connection_type` sends, when given), or
    InvalidServerMessage naming the type and each field that does not fit (the first five)."""
    if not isinstance(message, dict):
        raise InvalidServerMessage(f"A server message must be a JSON object, not {message!r:.80}.")
    type_name = message.get("type")
    registry = (
        SERVER_MESSAGE_TYPES if connection_type is None else _TYPES_OF_CONNECTION[connection_type]
    )
    candidates = registry.get(type_name) if isinstance(type_name, str) else None
    if not candidates:
        where = f" on a {connection_type} connection" if connection_type else ""
        raise InvalidServerMessage(f"Unknown server message type {type_name!r}{where}.")
    failures: list[tuple[type[ServerMessage], ValidationError]] = []
    for model in candidates:
        try:
            model.model_validate(message)
        except ValidationError as exc:
            failures.append((model, exc))
        else:
            return model
    # The schema it came closest to says best what is wrong.
    model, closest = min(failures, key=lambda failure: failure[1].error_count())
    errors = closest.errors(include_url=False)
    described = "; ".join(
        f"{field_name(err['loc'])}: {err['msg']}"
        + ("" if err["type"] == "missing" else f" (got {err.get('input')!r:.80})")
        for err in errors[:5]
    )
    raise InvalidServerMessage(
        f"Server message {type_name!r} does not fit {model.__name__}: {described}."
    )


def checking() -> bool:
    """PROTOCOL_CHECK_SERVER_MESSAGES: on in development and tests, off (free) in production."""
    return settings.configured and settings.PROTOCOL_CHECK_SERVER_MESSAGES


# -- building ---------------------------------------------------------------------------------
# Every server message has `id`, `type` and `timestamp`; replies add `request_id`, the `id` of
# the client message they answer.


def server_message(type_: str, *, request_id: str | None = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"id": new_id(), "type": type_, "timestamp": now_iso()}
    if request_id is not None:
        message["request_id"] = request_id
    message.update(fields)
    if checking():
        check_server_message(message)
    return message


def encode(message: dict[str, Any]) -> str:
    """A server message as the text of one frame. Always valid Unicode: a lone surrogate that got
    into a message anyway becomes U+FFFD here rather than fail the socket's UTF-8 write."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return text if is_text(text) else safe_text(text)


# -- text -------------------------------------------------------------------------------------
# JSON's `"\ud800"` decodes to a lone surrogate: a Python string, but no Unicode text, and UTF-8
# (every WebSocket text frame) cannot carry it. What the server echoes must be text.

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def is_text(value: str) -> bool:
    """True unless `value` holds a lone surrogate."""
    if value.isascii():  # the common case, at C speed
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_text(value: str) -> str:
    """`value` with each lone surrogate replaced by U+FFFD, the replacement character."""
    return value if is_text(value) else _LONE_SURROGATE.sub("\ufffd", value)
