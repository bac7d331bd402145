"""Errors on the wire: the seed's error envelope, ProtocolError and the shared refusals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from protocol.codes import AuthFailureReason, ErrorCode
from protocol.objects import iso, new_id, now_iso
from protocol.server import check_server_message, checking


def error_message(
    code: ErrorCode,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The seed's error envelope, exactly: id, type, error {code, message, details}, timestamp,
    request_id."""
    envelope = {
        "id": new_id(),
        "type": "error",
        "error": {"code": str(code), "message": message, "details": details or {}},
        "timestamp": now_iso(),
        "request_id": request_id,
    }
    if checking():
        check_server_message(envelope)
    return envelope


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
