"""JWT access tokens: verification, and the active user a token names.

Checked at the handshake (realtime.auth.JWTAuthMiddleware) and on an open socket's refresh
(realtime.token_refresh).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import jwt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from rest_framework_simplejwt import settings as simplejwt_settings

import protocol
from events.aio import CATCH_UP, db
from events.batch import Batcher
from protocol import AuthFailureReason

if TYPE_CHECKING:
    from django.db.models import Field


class AuthFailure(Exception):
    """A token or user that must not open (or keep) a socket. Never carries the token itself."""

    def __init__(
        self, reason: AuthFailureReason, message: str, *, expires_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.expires_at = expires_at

    def envelope(self, request_id: str | None = None) -> dict[str, Any]:
        return protocol.auth_error(
            self.reason, self.message, expires_at=self.expires_at, request_id=request_id
        ).envelope()


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    user_id: str
    expires_at: datetime


def _unverified_expiry(token: str) -> datetime | None:
    """For the error details only: when an (already rejected) token said it expires."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        return datetime.fromtimestamp(int(exp), UTC) if exp is not None else None
    except (jwt.PyJWTError, TypeError, ValueError, OverflowError):
        return None


def verify_access_token(token: str) -> VerifiedToken:
    """Check signature (one pinned algorithm), expiry, audience, issuer and token type."""
    # Looked up on each call: SimpleJWT rebinds api_settings when SIMPLE_JWT changes.
    jwt_settings = simplejwt_settings.api_settings
    verifying_key = jwt_settings.VERIFYING_KEY or jwt_settings.SIGNING_KEY
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthFailure(AuthFailureReason.MALFORMED, "Token is not a well-formed JWT.") from None
    if header.get("alg") != jwt_settings.ALGORITHM:
        # Refuses `none` and HS/RS confusion before any key is used.
        raise AuthFailure(
            AuthFailureReason.INVALID_ALGORITHM,
            f"Token algorithm {str(header.get('alg'))[:16]!r} is not accepted.",
        )
    try:
        claims = jwt.decode(
            token,
            verifying_key,
            algorithms=[jwt_settings.ALGORITHM],
            audience=jwt_settings.AUDIENCE,
            issuer=jwt_settings.ISSUER,
            leeway=jwt_settings.LEEWAY,
            options={
                "require": ["exp", jwt_settings.USER_ID_CLAIM, jwt_settings.TOKEN_TYPE_CLAIM],
                "verify_aud": jwt_settings.AUDIENCE is not None,
                "verify_iss": jwt_settings.ISSUER is not None,
            },
        )
    except jwt.ExpiredSignatureError:
        raise AuthFailure(
            AuthFailureReason.EXPIRED,
            "Invalid or expired token",
            expires_at=_unverified_expiry(token),
        ) from None
    except jwt.InvalidSignatureError:
        raise AuthFailure(
            AuthFailureReason.INVALID_SIGNATURE, "Token signature is invalid."
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthFailure(
            AuthFailureReason.MISSING_CLAIM, f"Token has no {exc.claim!r} claim."
        ) from None
    except jwt.InvalidAudienceError:
        raise AuthFailure(AuthFailureReason.INVALID_AUDIENCE, "Token audience is wrong.") from None
    except jwt.InvalidIssuerError:
        raise AuthFailure(AuthFailureReason.INVALID_ISSUER, "Token issuer is wrong.") from None
    except jwt.InvalidAlgorithmError:
        raise AuthFailure(
            AuthFailureReason.INVALID_ALGORITHM, "Token algorithm is not accepted."
        ) from None
    except (jwt.InvalidKeyError, jwt.DecodeError, jwt.InvalidTokenError):
        raise AuthFailure(AuthFailureReason.MALFORMED, "Token could not be decoded.") from None

    if claims.get(jwt_settings.TOKEN_TYPE_CLAIM) != "access":
        raise AuthFailure(AuthFailureReason.WRONG_TOKEN_TYPE, "An access token is required here.")
    return VerifiedToken(
        user_id=str(claims[jwt_settings.USER_ID_CLAIM]),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )


async def authenticate_token_async(token: str) -> tuple[User, VerifiedToken]:
    """Verify the token and load its active user. The signature is checked here (no I/O), and
    the user is read in one query with those of the sockets authenticating at the same time
    (events.batch: a connect storm costs a query per batch, not per socket)."""
    verified = verify_access_token(token)
    return active_user(await user_batcher(verified.user_id)), verified


def active_user(user: User | None) -> User:
    """The token's user, if it may hold a socket; else the AuthFailure saying why not."""
    if user is None:
        raise AuthFailure(AuthFailureReason.USER_NOT_FOUND, "Token user does not exist.")
    if not user.is_active:
        raise AuthFailure(AuthFailureReason.USER_INACTIVE, "User account is disabled.")
    return user


def users_by_id(user_ids: list[str]) -> dict[str, User | None]:
    """The users these token claims name, in one query (None for no such user). Only what a
    socket uses is loaded: the instance lives as long as the connection."""
    user_model = get_user_model()
    id_field = simplejwt_settings.api_settings.USER_ID_FIELD
    field = cast(
        "Field[Any, Any]", user_model._meta.get_field(id_field)
    )  # a column, not a relation
    found: dict[str, User | None] = dict.fromkeys(user_ids)
    wanted: dict[Any, list[str]] = defaultdict(list)  # value -> the claims naming it
    for claim in user_ids:
        try:
            wanted[field.to_python(claim)].append(claim)
        except (ValidationError, ValueError, TypeError):
            continue  # a claim that cannot name a user names none
    fields = {"pk", id_field, user_model.USERNAME_FIELD, "is_active"} - {"pk"}
    if wanted:
        for user in user_model.objects.only(*fields).filter(**{f"{id_field}__in": list(wanted)}):
            for claim in wanted[getattr(user, id_field)]:
                found[claim] = user
    return found


# Also the middleware's, which reads a connecting user with the connection slot at once.
user_batcher: Batcher[str, User | None] = Batcher(db(users_by_id, lane=CATCH_UP))
