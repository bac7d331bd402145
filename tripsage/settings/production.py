"""Production settings: secrets and the public URL come from the environment, with no defaults.

docs/deployment.md explains each requirement and how to generate the keys."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from tripsage.env import env_bool, env_str
from tripsage.secret_keys import require_strong_key
from tripsage.settings.base import *  # noqa: F403
from tripsage.settings.base import (
    DEV_JWT_SIGNING_KEY,
    DEV_SECRET_KEY,
    JWT_ALGORITHM,
    PUBLIC_URL,
    SIMPLE_JWT,
)

SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=True)
require_strong_key("DJANGO_SECRET_KEY", SECRET_KEY, known={"the development key": DEV_SECRET_KEY})
DEBUG = False
PRODUCTION = True

if not PUBLIC_URL:
    raise ImproperlyConfigured(
        "PUBLIC_URL is required in production: the URL users open, e.g. "
        "PUBLIC_URL=https://trips.example.com (or http://localhost:8080 for a plain-http trial). "
        "Allowed hosts, origins, secure cookies and HSTS derive from it."
    )
env_str("DATABASE_URL", required=True)
env_str("REDIS_URL", required=True)

# JWTs are signed with a key of their own: one leaked secret must not give both sessions and
# tokens, and the Django secret key can then be rotated without signing everyone out of the API.
if JWT_ALGORITHM.startswith("HS"):
    _jwt_key = env_str("JWT_SIGNING_KEY", "")
    if not _jwt_key:
        raise ImproperlyConfigured(
            f"JWT_SIGNING_KEY is required in production with JWT_ALGORITHM={JWT_ALGORITHM}: a "
            "key of its own, not DJANGO_SECRET_KEY. Generate one with python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))', or use JWT_ALGORITHM=RS256 with JWT_PRIVATE_KEY "
            "and JWT_PUBLIC_KEY."
        )
    require_strong_key(
        "JWT_SIGNING_KEY",
        _jwt_key,
        known={
            "the development JWT key": DEV_JWT_SIGNING_KEY,
            "the development key": DEV_SECRET_KEY,
            "the same as DJANGO_SECRET_KEY": SECRET_KEY,
        },
    )
    SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": _jwt_key}
elif not (SIMPLE_JWT["SIGNING_KEY"] and SIMPLE_JWT["VERIFYING_KEY"]):
    env_str("JWT_PRIVATE_KEY", required=True)
    env_str("JWT_PUBLIC_KEY", required=True)

# The proxy in front sets X-Forwarded-Proto (and is the only one that may: docs/deployment.md).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
WHITENOISE_USE_FINDERS = False
# Off unless asked for by name: DJANGO_DEBUG in base.py must not turn the schema check on here.
PROTOCOL_CHECK_SERVER_MESSAGES = env_bool("PROTOCOL_CHECK_SERVER_MESSAGES", False)
