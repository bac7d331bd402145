"""What clients send: a schema per message type, and parsing a frame into one of them.

A frame that is not one gets a ProtocolError with a precise code. Unknown fields are refused: a
typo must not be silently ignored.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from protocol.codes import AuthFailureReason, ErrorCode, TripField
from protocol.errors import ProtocolError, auth_error
from protocol.server import field_name, is_text, safe_text

ClientId = Field(default=None, min_length=1, max_length=128)

# Nesting deeper than this (levels, the message object included) is refused before anything
# walks it: no message needs more than a few, and every recursive walk (validation, encoding,
# logging) of a deeper one costs stack, up to RecursionError at about 1,000.
MAX_JSON_DEPTH = 32
# Ids, versions and seqs are PostgreSQL bigints: a larger number is no id of ours.
MAX_WIRE_INT = 2**63 - 1


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

    @field_validator("data")
    @classmethod
    def _echoable(cls, data: JsonValue) -> JsonValue:
        """What is echoed must be text: a lone surrogate in a string or a key is refused."""
        if _untext(data):
            raise PydanticCustomError(
                "string_unicode", "Input should be valid Unicode text (a lone surrogate is not)"
            )
        return data


class TripUpdate(ClientMessage):
    """Change one field, based on the trip version the client last saw that field at."""

    type: Literal["trip.update"]
    update_id: uuid.UUID  # idempotency key: a retry never applies twice
    field: TripField
    value: JsonValue
    base_version: StrictInt = Field(ge=0, le=MAX_WIRE_INT)


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
    conflict_id: StrictInt = Field(ge=1, le=MAX_WIRE_INT)
    choice: Literal["mine", "theirs", "value"]
    value: JsonValue = None
    update_id: uuid.UUID | None = None


class Resume(ClientMessage):
    """After a reconnect: the last `seq` seen. Answered with the missed events in order and
    `resume.complete`, or with `resync.required` and a fresh snapshot."""

    type: Literal["resume"]
    last_seq: StrictInt = Field(ge=0, le=MAX_WIRE_INT)


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
    ids: list[Annotated[StrictInt, Field(le=MAX_WIRE_INT)]] = Field(min_length=1, max_length=500)


class NotificationReadAll(ClientMessage):
    type: Literal["notification.read_all"]


class AgentCancel(ClientMessage):
    """Cancel an agent run the sender owns (answered with `ack` and the run)."""

    type: Literal["agent.cancel"]
    run_id: StrictInt = Field(ge=1, le=MAX_WIRE_INT)


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


class _NotJson(ValueError):
    """NaN and Infinity: Python's json reads them, but they are not JSON (RFC 8259), and a
    client's JSON.parse would fail on them echoed back."""


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON.")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text[:32]} is beyond a double's range.")
    return value


def _invalid_format(
    message: str, reason: str, request_id: str | None = None, **details: Any
) -> ProtocolError:
    return ProtocolError(
        ErrorCode.INVALID_MESSAGE_FORMAT,
        message,
        details={"reason": reason, **details},
        request_id=request_id,
    )


def _too_deep(request_id: str | None = None) -> ProtocolError:
    return _invalid_format(
        f"Message is nested deeper than {MAX_JSON_DEPTH} levels.",
        "too_deep",
        request_id,
        max_depth=MAX_JSON_DEPTH,
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` levels in `value` (iteratively: no stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _untext(value: Any) -> bool:
    """Whether a lone surrogate is anywhere in `value`, in a string or a key."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json(text: str | None, bytes_data: bytes | None, *, max_bytes: int) -> dict[str, Any]:
    """Decode one frame into a JSON object or raise ProtocolError with a precise code."""
    if text is None:
        raise _invalid_format("Binary frames are not supported: send JSON text.", "binary_frame")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"Message of {size} bytes exceeds the limit of {max_bytes} bytes.",
            details={"size": size, "max_bytes": max_bytes},
        )
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise _invalid_format(
            "Message is not valid JSON.", "invalid_json", position=exc.pos
        ) from None
    except _NotJson as exc:
        raise _invalid_format(
            f"Message is not valid JSON: {exc}", "invalid_json", position=None
        ) from None
    except ValueError:
        # int() refuses more than 4,300 digits (CVE-2020-10735); _finite_float, overflow.
        raise _invalid_format(
            "A number in the message is out of range (at most 4,300 digits, within a double's "
            "range).",
            "number_out_of_range",
        ) from None
    # Fewer brackets than levels allowed cannot nest too deep: most frames skip the walk.
    if (
        isinstance(data, dict | list)
        and text.count("[") + text.count("{") > MAX_JSON_DEPTH
        and _deeper_than(data, MAX_JSON_DEPTH)
    ):
        raise _too_deep(request_id_of(data) if isinstance(data, dict) else None)
    if not isinstance(data, dict):
        raise _invalid_format("Message must be a JSON object.", "not_an_object")
    return data


def request_id_of(data: dict[str, Any]) -> str | None:
    """The frame's `id`, to echo as `request_id`: None unless a string of 1-128 characters of
    Unicode text."""
    value = data.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= 128 and is_text(value) else None


def _invalid_text(field: str, request_id: str | None) -> ProtocolError:
    return _invalid_format(
        f"`{field}` is not valid Unicode text (a lone surrogate such as \\ud800 is not).",
        "invalid_text",
        request_id,
        field=field,
    )


def validate(data: dict[str, Any], registry: dict[str, type[ClientMessage]]) -> ClientMessage:
    """Validate a decoded object against the connection's message types."""
    request_id = request_id_of(data)
    type_name = data.get("type")
    if not isinstance(type_name, str):
        raise _invalid_format(
            "Message has no `type` string.", "missing_type", request_id, field="type"
        )
    for key in data:  # a key is echoed as the field an error names
        if not is_text(key):
            raise _invalid_text(safe_text(key), request_id)
    if not is_text(type_name):
        raise _invalid_text("type", request_id)
    model = registry.get(type_name)
    if model is None:
        raise _invalid_format(
            f"Unknown message type {type_name[:64]!r} for this connection.",
            "unknown_type",
            request_id,
            field="type",
            accepted=sorted(registry),
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False)
        # Text that is no Unicode first: it is the most precise thing to say.
        found.sort(key=lambda err: err["type"] != "string_unicode")
        if found[0]["type"] == "string_unicode":
            raise _invalid_text(field_name(found[0]["loc"]), request_id) from None
        errors = [{"field": field_name(err["loc"]), "message": err["msg"]} for err in found]
        raise _invalid_format(
            f"Invalid `{type_name}` message: {errors[0]['field']}: {errors[0]['message']}.",
            "invalid_fields",
            request_id,
            field=errors[0]["field"],
            errors=errors,
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
