"""The wire protocol: every client and server message, error code and close code in one place.

docs/protocol.md documents each message; the error codes and the envelope are the seed's
(../shared/seed/websocket-integration-guide.md, "Error Handling").
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, ValidationError


class ErrorCode(StrEnum):
    """The seed's eight error codes, with the recovery action the seed gives each."""

    CONNECTION_FAILED = "CONNECTION_FAILED"  # retry with exponential backoff
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"  # refresh token or re-authenticate
    AUTHORIZATION_FAILED = "AUTHORIZATION_FAILED"  # check user permissions
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"  # client-side rate limiting
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"  # compress or split
    INVALID_MESSAGE_FORMAT = "INVALID_MESSAGE_FORMAT"  # validate before sending
    SERVER_ERROR = "SERVER_ERROR"  # retry, contact support
    NETWORK_ERROR = "NETWORK_ERROR"  # wait for reconnection (client-side only)


class CloseCode(IntEnum):
    """WebSocket close codes the server uses. 4000-4999 are reserved for applications."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down: reconnect with backoff
    MESSAGE_TOO_BIG = 1009  # sent by daphne itself past its transport limit
    SERVER_FAULT = 1011  # only for a fault of ours while opening, after SERVER_ERROR
    AUTHENTICATION_FAILED = 4001  # no, bad, expired or revoked credentials: re-authenticate
    AUTHORIZATION_FAILED = 4003  # not allowed on this resource: do not retry
    HEARTBEAT_TIMEOUT = 4008  # nothing heard from the client for too long: reconnect
    SLOW_CONSUMER = 4009  # the client stopped reading (unacknowledged data over the limit)
    CLOSED_BY_OPERATOR = 4010  # an operator's "disconnect" in the admin: reconnect with backoff
    RATE_LIMITED = 4029  # over a connection limit, or flooding far past the message limit


class ConnectionType(StrEnum):
    TRIP_COLLABORATION = "trip_collaboration"
    CHAT = "chat"
    AGENT_STATUS = "agent_status"
    NOTIFICATIONS = "notifications"


class AuthFailureReason(StrEnum):
    """`error.details.reason` values for AUTHENTICATION_FAILED."""

    MISSING = "missing"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_ALGORITHM = "invalid_algorithm"
    MISSING_CLAIM = "missing_claim"
    INVALID_AUDIENCE = "invalid_audience"
    INVALID_ISSUER = "invalid_issuer"
    WRONG_TOKEN_TYPE = "wrong_token_type"
    USER_NOT_FOUND = "user_not_found"
    USER_INACTIVE = "user_inactive"
    USER_MISMATCH = "user_mismatch"
    TOKEN_IN_QUERY_STRING = "token_in_query_string"
    TIMEOUT = "timeout"
    NOT_AUTHENTICATED = "not_authenticated"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------------------------
# Server messages. Every one has `id`, `type` and `timestamp`; replies add `request_id`, the `id`
# of the client message they answer.


def server_message(type_: str, *, request_id: str | None = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"id": new_id(), "type": type_, "timestamp": now_iso()}
    if request_id is not None:
        message["request_id"] = request_id
    message.update(fields)
    return message


def error_message(
    code: ErrorCode,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The seed's error envelope, exactly: id, type, error {code, message, details}, timestamp,
    request_id."""
    return {
        "id": new_id(),
        "type": "error",
        "error": {"code": str(code), "message": message, "details": details or {}},
        "timestamp": now_iso(),
        "request_id": request_id,
    }


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class ProtocolError(Exception):
    """A client mistake: answered with the error envelope, and the socket stays open."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.request_id = request_id

    def envelope(self) -> dict[str, Any]:
        return error_message(
            self.code, self.message, details=self.details, request_id=self.request_id
        )


def not_a_member(
    trip_id: int, *, request_id: str | None = None, anymore: bool = False
) -> ProtocolError:
    """The one refusal for a trip's sockets: the same answer for "no such trip" and "not a
    member" (ids are not probed), at connect or when membership ends."""
    return ProtocolError(
        ErrorCode.AUTHORIZATION_FAILED,
        f"You are {'no longer' if anymore else 'not'} a member of this trip.",
        details={"trip_id": trip_id},
        request_id=request_id,
    )


def auth_error(
    reason: AuthFailureReason,
    message: str,
    *,
    expires_at: datetime | None = None,
    request_id: str | None = None,
) -> ProtocolError:
    """AUTHENTICATION_FAILED with the seed's details: token_type, reason, expires_at."""
    return ProtocolError(
        ErrorCode.AUTHENTICATION_FAILED,
        message,
        details={"token_type": "jwt", "reason": str(reason), "expires_at": iso(expires_at)},
        request_id=request_id,
    )


# --------------------------------------------------------------------------------------------
# Client messages. Unknown fields are refused: a typo must not be silently ignored.

ClientId = Field(default=None, min_length=1, max_length=128)


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    id: str | None = ClientId


class Auth(ClientMessage):
    """First message on every socket. The seed's client sends `{"token": ...}` with no type."""

    type: Literal["auth"] = "auth"
    token: str = Field(min_length=1, max_length=8192)


class AuthRefresh(ClientMessage):
    """A new access token for a long-lived socket, without reconnecting."""

    type: Literal["auth.refresh"]
    token: str = Field(min_length=1, max_length=8192)


class Ping(ClientMessage):
    """Client heartbeat: answered with `pong`."""

    type: Literal["ping"]


class Pong(ClientMessage):
    """Answer to the server's `ping`; `request_id` names the ping, for round-trip latency."""

    type: Literal["pong"]
    request_id: str | None = Field(default=None, max_length=128)


class Echo(ClientMessage):
    """Diagnostics: the server answers with the same `data`."""

    type: Literal["echo"]
    data: JsonValue = None


TripField = Literal["name", "destination", "start_date", "end_date", "budget", "currency", "notes"]


class TripUpdate(ClientMessage):
    """Change one field, based on the trip version the client last saw that field at."""

    type: Literal["trip.update"]
    update_id: uuid.UUID  # idempotency key: a retry never applies twice
    field: TripField
    value: JsonValue
    base_version: StrictInt = Field(ge=0)


class EditingStart(ClientMessage):
    """Show others that this user is editing `field`; renew within 30 s to keep showing it."""

    type: Literal["editing.start"]
    field: TripField


class EditingStop(ClientMessage):
    type: Literal["editing.stop"]
    field: TripField


class ConflictResolve(ClientMessage):
    """Settle a conflict: `mine` / `theirs` (relative to the sender) or `value` with `value`."""

    type: Literal["conflict.resolve"]
    conflict_id: StrictInt = Field(ge=1)
    choice: Literal["mine", "theirs", "value"]
    value: JsonValue = None
    update_id: uuid.UUID | None = None


class Resume(ClientMessage):
    """After a reconnect: the last `seq` seen. Answered with the missed events in order and
    `resume.complete`, or with `resync.required` and a fresh snapshot."""

    type: Literal["resume"]
    last_seq: StrictInt = Field(ge=0)


class ChatSend(ClientMessage):
    """Post to the trip chat. `client_id` makes a retry post once (answered `duplicate`)."""

    type: Literal["chat.send"]
    text: str = Field(min_length=1, max_length=16_000)  # the service applies CHAT_MAX_LENGTH
    client_id: uuid.UUID | None = None


class TypingStart(ClientMessage):
    """Show the chat that this user is typing; it expires unless renewed (`expires_in`)."""

    type: Literal["typing.start"]


class TypingStop(ClientMessage):
    type: Literal["typing.stop"]


class NotificationRead(ClientMessage):
    """Mark these notifications read (ids of others' notifications are ignored)."""

    type: Literal["notification.read"]
    ids: list[StrictInt] = Field(min_length=1, max_length=500)


class NotificationReadAll(ClientMessage):
    type: Literal["notification.read_all"]


class AgentCancel(ClientMessage):
    """Cancel an agent run the sender owns (answered with `ack` and the run)."""

    type: Literal["agent.cancel"]
    run_id: StrictInt = Field(ge=1)


# Every connection type accepts these once authenticated.
class RateLimitStatus(ClientMessage):
    """Asks for a `rate_limit_status` (counts as a message)."""

    type: Literal["rate_limit_status"]


COMMON_CLIENT_MESSAGES: tuple[type[ClientMessage], ...] = (
    AuthRefresh,
    Ping,
    Pong,
    RateLimitStatus,
)
# Not counted by the rate limiter: the heartbeat and authentication keep a socket alive.
UNTHROTTLED_TYPES = frozenset({"ping", "pong", "auth.refresh"})


def message_registry(models: tuple[type[ClientMessage], ...]) -> dict[str, type[ClientMessage]]:
    registry: dict[str, type[ClientMessage]] = {}
    for model in models:
        type_name = model.model_fields["type"].annotation.__args__[0]  # the Literal's value
        registry[type_name] = model
    return registry


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(message)"


def parse_json(text: str | None, bytes_data: bytes | None, *, max_bytes: int) -> dict[str, Any]:
    """Decode one frame into a JSON object or raise ProtocolError with a precise code."""
    if text is None:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            "Binary frames are not supported: send JSON text.",
            details={"reason": "binary_frame"},
        )
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"Message of {size} bytes exceeds the limit of {max_bytes} bytes.",
            details={"size": size, "max_bytes": max_bytes},
        )
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            "Message is not valid JSON.",
            details={"reason": "invalid_json", "position": getattr(exc, "pos", None)},
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            "Message must be a JSON object.",
            details={"reason": "not_an_object"},
        )
    return data


def request_id_of(data: dict[str, Any]) -> str | None:
    value = data.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


def validate(data: dict[str, Any], registry: dict[str, type[ClientMessage]]) -> ClientMessage:
    """Validate a decoded object against the connection's message types."""
    request_id = request_id_of(data)
    type_name = data.get("type")
    if not isinstance(type_name, str):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            "Message has no `type` string.",
            details={"reason": "missing_type", "field": "type"},
            request_id=request_id,
        )
    model = registry.get(type_name)
    if model is None:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            f"Unknown message type {type_name[:64]!r} for this connection.",
            details={"reason": "unknown_type", "field": "type", "accepted": sorted(registry)},
            request_id=request_id,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": _field_name(err["loc"]), "message": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            f"Invalid `{type_name}` message: {errors[0]['field']}: {errors[0]['message']}.",
            details={"reason": "invalid_fields", "field": errors[0]["field"], "errors": errors},
            request_id=request_id,
        ) from None


def parse_auth(data: dict[str, Any]) -> Auth:
    """The first message: `{"token": ...}` (the seed's client) or `{"type": "auth", ...}`."""
    if data.get("type", "auth") != "auth":
        raise auth_error(
            AuthFailureReason.NOT_AUTHENTICATED,
            'Authenticate first: send {"token": "<access token>"}.',
            request_id=request_id_of(data),
        )
    if not isinstance(data.get("token"), str) or not data["token"]:
        raise auth_error(
            AuthFailureReason.MISSING,
            "No token in the authentication message.",
            request_id=request_id_of(data),
        )
    try:
        return Auth.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise auth_error(
            AuthFailureReason.MALFORMED,
            f"Invalid authentication message: {_field_name(first['loc'])}: {first['msg']}.",
            request_id=request_id_of(data),
        ) from None
