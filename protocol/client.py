"""What clients send: a schema per message type, and parsing a frame into one of them.

A frame that is not one gets a ProtocolError with a precise code. Unknown fields are refused: a
typo must not be silently ignored.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, ValidationError

from protocol.codes import AuthFailureReason, ErrorCode, TripField
from protocol.errors import ProtocolError, auth_error
from protocol.server import field_name

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
        annotation = model.model_fields["type"].annotation
        assert annotation is not None  # every client message declares its `type` a Literal
        type_name = get_args(annotation)[0]  # the Literal's value
        registry[type_name] = model
    return registry


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
            {"field": field_name(err["loc"]), "message": err["msg"]}
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
            f"Invalid authentication message: {field_name(first['loc'])}: {first['msg']}.",
            request_id=request_id_of(data),
        ) from None
