"""Domain errors raised by services; the socket and REST edges map them to the seed's codes."""

from __future__ import annotations


class CollaborationError(Exception):
    """Base class: a request the rules refuse. `message` is safe to show to the client."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotAllowed(CollaborationError):
    """The actor's role does not permit this (AUTHORIZATION_FAILED, HTTP 403)."""


class NotFound(CollaborationError):
    """No such object for this actor (AUTHORIZATION_FAILED, HTTP 404): ids are not probed."""


class InvalidChange(CollaborationError):
    """A value or request that can never be valid (INVALID_MESSAGE_FORMAT, HTTP 400)."""

    def __init__(self, message: str, *, field: str, **details: object) -> None:
        super().__init__(message, field=field, **details)
        self.field = field
