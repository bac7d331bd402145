"""Test settings: the base settings with fast hashing, RS256 JWTs from test-only keys, and a
file-backed SQLite test database so real server processes can share it."""

from __future__ import annotations

import os
from pathlib import Path

from tripsage.env import env_int, env_str
from tripsage.settings.base import *  # noqa: F403
from tripsage.settings.base import BASE_DIR, DATABASES, SIMPLE_JWT

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Asymmetric keys in the suite, so the HS/RS confusion attack can be tried for real.
_KEYS = Path(BASE_DIR) / "tests" / "keys"
JWT_ALGORITHM = "RS256"
SIMPLE_JWT = {
    **SIMPLE_JWT,
    "ALGORITHM": "RS256",
    "SIGNING_KEY": (_KEYS / "test-only-private.pem").read_text(),
    "VERIFYING_KEY": (_KEYS / "test-only-public.pem").read_text(),
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so the daphne processes the tests start see the same rows.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("TRIPSAGE_TEST_SQLITE", str(BASE_DIR / ".pytest-db.sqlite3"))
    }

# The suite connects from one address all the time; tests of this limit set their own.
REALTIME_CONNECTS_PER_MINUTE_PER_IP = env_int("REALTIME_CONNECTS_PER_MINUTE_PER_IP", 1_000_000)
# Sign-ins too (tests/collaboration/test_sign_in_limits.py sets its own).
SIGN_IN_RATE = env_str("SIGN_IN_RATE", "1000000/min")

# Every message a test's server builds is checked against its schema (tests also check every
# frame they receive: tests/wsclient.py).
PROTOCOL_CHECK_SERVER_MESSAGES = True
