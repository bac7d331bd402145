"""The protocol's closed sets: error codes, close codes, connection types, auth failure reasons."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Literal


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
    # A fault of ours that ends the socket, after SERVER_ERROR: reconnect with backoff. Not 1011:
    # daphne (autobahn) lets an application close only with 1000 or 3000-4999.
    SERVER_FAULT = 4011
    AUTHENTICATION_FAILED = 4001  # no, bad, expired or revoked credentials: re-authenticate
    AUTHORIZATION_FAILED = 4003  # not allowed on this resource: do not retry
    HEARTBEAT_TIMEOUT = 4008  # nothing heard from the client for too long: reconnect
    SLOW_CONSUMER = 4009  # the client stopped reading (unacknowledged data over the limit)
    CLOSED_BY_OPERATOR = 4010  # an operator's "disconnect" in the admin: reconnect with backoff
    # The process has too many sockets opening (realtime.connect_gate), after SERVER_ERROR with
    # `reason: "overloaded"` and `retry_after`: reconnect after it, jittered. 1013's meaning
    # (try again later), which daphne would not let an application send.
    TRY_AGAIN_LATER = 4013
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


# The editable trip fields, in both directions (collaboration.fields.EDITABLE_FIELDS, in order).
TripField = Literal["name", "destination", "start_date", "end_date", "budget", "currency", "notes"]
