"""Production's judgement of secret keys: Django's own deploy check (security.W009), made fatal."""

from __future__ import annotations

# W009's own test and limits; the private helper is not in the stubs.
from django.core.checks.security.base import (  # type: ignore[attr-defined]
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
    _check_secret_key,
)
from django.core.exceptions import ImproperlyConfigured

GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def require_strong_key(name: str, value: str, *, known: dict[str, str]) -> None:
    """Refuse `value` unless Django's deploy check would pass it as a SECRET_KEY and it equals
    none of the `known` keys (label -> key: the development defaults, another secret)."""
    for label, key in known.items():
        if value == key:
            raise ImproperlyConfigured(
                f"{name} is {label}: set it to a key of its own, for example the output of "
                f"{GENERATE}"
            )
    if not _check_secret_key(value):
        raise ImproperlyConfigured(
            f"{name} is too weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters "
            f"({len(value)} given), at least {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones "
            f"({len(set(value))} given), and must not start with "
            f"'{SECRET_KEY_INSECURE_PREFIX}'. Generate one with {GENERATE}"
        )
