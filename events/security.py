"""The security event log: one logger, `tripsage.security`, one JSON object per line.

Who authenticated or failed to, on which socket, from which address; who refreshed a token; whose
sockets were revoked and which an operator closed; who changed whose role on a trip. The fields
are fixed (docs/security-log.md): `record` takes no others, so a token, a password or a message
body cannot be logged by passing it along. The address is the client's as the trusted proxies
resolved it (tripsage.proxies), from the record's caller or, where the caller has none (a
service), from the request or handshake it runs for (`bind`).

It sits with events, beneath every app, so that collaboration and metrics can record without
knowing the sockets. Where the lines go is settings.LOGGING's (SECURITY_LOG_FILE, else stderr).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware

LOGGER_NAME = "tripsage.security"
logger = logging.getLogger(LOGGER_NAME)

# Client input in a record (the username a login tried, a refused origin) is cut to this.
MAX_INPUT_CHARS = 150


class Event(StrEnum):
    """Every event the log holds; docs/security-log.md describes each."""

    LOGIN_SUCCEEDED = "auth.login_succeeded"
    LOGIN_FAILED = "auth.login_failed"
    TOKEN_REFRESHED = "auth.token_refreshed"  # REST: POST /api/auth/token/refresh/
    TOKEN_REFRESH_FAILED = "auth.token_refresh_failed"
    SOCKET_AUTHENTICATED = "socket.authenticated"
    SOCKET_AUTH_FAILED = "socket.auth_failed"
    SOCKET_REFRESHED = "socket.refreshed"  # the socket's `auth.refresh`
    SOCKET_REFRESH_FAILED = "socket.refresh_failed"
    USER_REVOKED = "user.revoked"  # deactivated or deleted: every socket of the user closes
    SOCKET_REVOKED = "socket.revoked"  # one such socket, closed
    OPERATOR_DISCONNECT = "operator.disconnect"  # an operator asked for sockets to close
    SOCKET_CLOSED_BY_OPERATOR = "socket.closed_by_operator"  # one such socket, closed
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    ACCESS_DENIED = "access.denied"  # a signed-in user refused an action on a trip or object


OUTCOME = {
    Event.LOGIN_FAILED: "failure",
    Event.TOKEN_REFRESH_FAILED: "failure",
    Event.SOCKET_AUTH_FAILED: "failure",
    Event.SOCKET_REFRESH_FAILED: "failure",
    Event.ACCESS_DENIED: "failure",
}

# The fields a request or a socket gives every record made while it runs (`bind`).
_bound: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "security_log_bound", default=None
)


def record(
    event: Event,
    *,
    user_id: int | str | None = None,
    connection_id: str | None = None,
    remote_addr: str | None = None,
    reason: str | None = None,
    actor_id: int | None = None,
    username: str | None = None,
    trip_id: int | None = None,
    role: str | None = None,
    previous_role: str | None = None,
    connection_type: str | None = None,
    origin: str | None = None,
    connection_ids: list[str] | None = None,
    method: str | None = None,
    path: str | None = None,
    action: str | None = None,
) -> None:
    """Log one security event. `user_id` is whose account it concerns (the member, for the
    member events), `actor_id` who did it where that is someone else (an owner, an operator)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "event": str(event),
        "outcome": OUTCOME.get(event, "success"),
        **(_bound.get() or {}),
    }
    given = {
        "user_id": user_id,
        "connection_id": connection_id,
        "remote_addr": remote_addr,
        "reason": reason,
        "actor_id": actor_id,
        "username": _cut(username),
        "trip_id": trip_id,
        "role": role,
        "previous_role": previous_role,
        "connection_type": connection_type,
        "origin": _cut(origin),
        "connection_ids": connection_ids,
        "method": method,
        "path": _cut(path),
        "action": _cut(action),
    }
    fields.update((key, value) for key, value in given.items() if value is not None)
    if "user_id" in fields:  # a token's subject is a string
        fields["user_id"] = _int_or_none(fields["user_id"])
    logger.info("%s", event, extra={"security": fields})


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Give records made inside the block these fields (unless the record names its own)."""
    token = _bound.set({**(_bound.get() or {}), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


@sync_and_async_middleware
def request_context(
    get_response: Callable[[Any], Any],
) -> Callable[[Any], Any]:
    """Binds each request's client address (REMOTE_ADDR, as TrustedProxyMiddleware resolved
    it) for the records its view's services make."""
    if iscoroutinefunction(get_response):

        async def middleware(request: Any) -> Any:
            with bind(remote_addr=request.META.get("REMOTE_ADDR")):
                return await get_response(request)

        return middleware

    def sync_middleware(request: Any) -> Any:
        with bind(remote_addr=request.META.get("REMOTE_ADDR")):
            return get_response(request)

    return sync_middleware


def bind_more(**fields: Any) -> None:
    """Inside a `bind` block: add fields to it until the block ends (which undoes this too)."""
    _bound.set({**(_bound.get() or {}), **fields})


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: the time (UTC, ISO 8601), the level, then the record's fields.
    json escapes newlines and control characters, so client input cannot forge a line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "security", None)
        if fields is None:  # something else logged to this logger: kept, as a message
            fields = {"event": "message", "message": record.getMessage()}
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            **fields,
        }
        return json.dumps(line, ensure_ascii=True, default=str)


def _cut(text: str | None) -> str | None:
    return None if text is None else str(text)[:MAX_INPUT_CHARS]


def _int_or_none(value: int | str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


__all__ = [
    "LOGGER_NAME",
    "Event",
    "JsonLinesFormatter",
    "bind",
    "bind_more",
    "record",
    "request_context",
]
