"""Test data: users, trips, edits, and tokens (good ones and every kind of bad one)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from collaboration.models import Trip
from collaboration.services.members import trip_member_set
from collaboration.services.mutations import MutationResult
from collaboration.services.trips import trip_create, trip_update

KEYS = Path(__file__).resolve().parent / "keys"
PASSWORD = "correct-horse-battery"


def make_user(username: str, *, is_active: bool = True, **fields: Any) -> AbstractBaseUser:
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_active=is_active, **fields
    )
    return user


def make_trip(owner: AbstractBaseUser, members: dict[AbstractBaseUser, str] | None = None) -> Trip:
    trip = trip_create(owner=owner, name=f"{owner.get_username()}'s trip")
    for user, role in (members or {}).items():
        trip_member_set(trip_id=trip.pk, actor=None, user=user, role=role)
    return trip


def update(
    trip: Trip,
    actor: AbstractBaseUser,
    field: str,
    value: Any,
    base_version: int,
    update_id: uuid.UUID | None = None,
) -> MutationResult:
    """One `trip.update` through the service, as a socket sends it (a new update_id unless
    given)."""
    return trip_update(
        trip_id=trip.pk,
        actor=actor,
        update_id=update_id or uuid.uuid4(),
        field=field,
        value=value,
        base_version=base_version,
    )


def make_crew() -> tuple[AbstractBaseUser, AbstractBaseUser, AbstractBaseUser, Trip]:
    """The seed's roles: alice owns the trip, bob edits, carol views."""
    alice, bob, carol = (make_user(name) for name in ("alice", "bob", "carol"))
    trip = make_trip(alice, {bob: "editor", carol: "viewer"})
    trip.refresh_from_db()  # adding members logged events: seq is past 0
    return alice, bob, carol, trip


def access_token(user: AbstractBaseUser, *, lifetime_seconds: float | None = None) -> str:
    token = AccessToken.for_user(user)
    if lifetime_seconds is not None:
        token.set_exp(lifetime=_timedelta(lifetime_seconds))
    return str(token)


def refresh_token(user: AbstractBaseUser) -> str:
    return str(RefreshToken.for_user(user))


def _timedelta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


def claims_for(user: AbstractBaseUser, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": f"test-{now}",
        api_settings.USER_ID_CLAIM: str(user.pk),
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def signed(claims: dict[str, Any], *, key: Any = None, algorithm: str = "RS256") -> str:
    return jwt.encode(claims, key if key is not None else private_pem(), algorithm=algorithm)


def private_pem() -> str:
    return (KEYS / "test-only-private.pem").read_text()


def public_pem() -> str:
    return (KEYS / "test-only-public.pem").read_text()


def foreign_private_pem() -> bytes:
    """A key the server has never seen: a forged signature."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def unsigned_none_token(claims: dict[str, Any]) -> str:
    """`alg: none`, the oldest JWT attack."""
    return jwt.encode(claims, None, algorithm="none")


def hs_confused_token(claims: dict[str, Any]) -> str:
    """HS256 signed with the server's public key: works on servers that trust the header's alg."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(public_pem().encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"
