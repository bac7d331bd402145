"""REST errors in the seed's envelope, with the same codes as the WebSocket protocol."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from realtime import protocol
from realtime.protocol import ErrorCode

_CODES = {
    status.HTTP_400_BAD_REQUEST: ErrorCode.INVALID_MESSAGE_FORMAT,
    status.HTTP_401_UNAUTHORIZED: ErrorCode.AUTHENTICATION_FAILED,
    status.HTTP_403_FORBIDDEN: ErrorCode.AUTHORIZATION_FAILED,
    status.HTTP_404_NOT_FOUND: ErrorCode.AUTHORIZATION_FAILED,
    status.HTTP_405_METHOD_NOT_ALLOWED: ErrorCode.INVALID_MESSAGE_FORMAT,
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: ErrorCode.MESSAGE_TOO_LARGE,
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: ErrorCode.INVALID_MESSAGE_FORMAT,
    status.HTTP_429_TOO_MANY_REQUESTS: ErrorCode.RATE_LIMIT_EXCEEDED,
}


def error_envelope_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected fault: Django's 500 handling and logging
    code = _CODES.get(response.status_code, ErrorCode.SERVER_ERROR)
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        message, details = "Invalid request.", {"fields": data}
    elif isinstance(data, dict) and "detail" in data:
        message = str(data["detail"])
        details = {key: value for key, value in data.items() if key != "detail"}
        if getattr(exc, "default_code", None):
            details.setdefault("reason", getattr(data["detail"], "code", exc.default_code))
    else:
        message, details = "Request failed.", {"errors": data}
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        details.setdefault("token_type", "jwt")
    wait = getattr(exc, "wait", None)
    if wait is not None:
        details["retry_after"] = int(wait)
    response.data = protocol.error_message(code, message, details=details)
    return response
