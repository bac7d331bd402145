"""What the REST endpoints share: the signed-in user, service refusals, whole-number parameters."""

from __future__ import annotations

import re
from typing import NoReturn, cast

from django.contrib.auth.models import User
from rest_framework import exceptions
from rest_framework.request import Request

from collaboration.errors import CollaborationError, InvalidChange, NotFound


def request_user(request: Request) -> User:
    """The signed-in user: IsAuthenticated, REST_FRAMEWORK's default permission, has refused
    anonymous requests before a view runs, and these views authenticate users only."""
    return cast(User, request.user)


def raise_for(error: CollaborationError) -> NoReturn:
    """A service's refusal as a DRF exception; the envelope handler gives it the seed's shape."""
    if isinstance(error, InvalidChange):
        raise exceptions.ValidationError({error.field: [error.message]})
    if isinstance(error, NotFound):
        raise exceptions.NotFound(error.message)
    raise exceptions.PermissionDenied(error.message)


# ASCII digits only: int() also takes "1_000", " 7", "+7" and other scripts' digits ("٣").
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")
MAX_SEQ = 2**63 - 1  # PostgreSQL's bigint, the largest `seq` a row can hold


def int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    """The query parameter `name` as a whole number in [low, high], or `default` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and _WHOLE_NUMBER.fullmatch(raw)):
        raise exceptions.ValidationError({name: ["must be a whole number"]})
    limit = f"{low}-{high}" if high is not None else f">= {low}"
    # More digits than the bound has is out of range, without int() (which refuses 4,300 digits).
    if high is not None and len(raw.lstrip("-").lstrip("0")) > len(str(high)):
        raise exceptions.ValidationError({name: [f"must be {limit}"]})
    try:
        value = int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: ["must be a whole number"]}) from None
    if value < low or (high is not None and value > high):
        raise exceptions.ValidationError({name: [f"must be {limit}"]})
    return value
