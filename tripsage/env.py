"""One typed reader for settings that come from the environment."""

from __future__ import annotations

import os
from typing import Literal, overload
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# With a default or required=True the answer is a str, so settings need no None checks.
@overload
def env_str(name: str, default: str, *, required: bool = False) -> str: ...
@overload
def env_str(name: str, default: None = None, *, required: Literal[True]) -> str: ...
@overload
def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None: ...
def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    """Return the variable's value, the default, or fail at start-up when required."""
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(
                f"{name} is required in this settings module: set it in the environment "
                "(see docs/configuration.md)."
            )
        return default
    return value


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no.")


def env_token(name: str, off: str) -> str:
    """A shared secret a deployment may set (empty: the feature it unlocks is off); one set
    shorter than 32 characters stops start-up. `off` says what leaving it empty does."""
    value = env_str(name, "")
    if value and len(value) < 32:
        raise ImproperlyConfigured(
            f"{name} is set but only {len(value)} characters long: use at least 32 random "
            "characters (python -c 'import secrets; print(secrets.token_urlsafe(32))') or leave "
            f"it empty {off}."
        )
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_rate_limits(
    name: str, defaults: dict[str, tuple[int, int, float]]
) -> dict[str, tuple[int, int, float]]:
    """Rate limits by kind over the defaults: "chat=120/20,trip_collaboration=300/50/60" is
    <per window>/<burst>[/<window seconds>] (window 60 s unless given)."""
    limits = dict(defaults)
    text = os.environ.get(name, "")
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, spec = item.partition("=")
        kind = kind.strip()
        parts = spec.strip().split("/")
        if kind not in defaults or len(parts) not in (2, 3):
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not <kind>=<per window>/<burst>[/<window seconds>] "
                f"with a kind of {', '.join(defaults)}"
            )
        try:
            per_minute, burst = int(parts[0]), int(parts[1])
            window = float(parts[2]) if len(parts) == 3 else 60.0
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} holds something not a number") from None
        if per_minute < 1 or burst < 1 or window <= 0:
            raise ImproperlyConfigured(f"{name}: {item!r} must be positive")
        limits[kind] = (per_minute, burst, window)
    return limits


def url_with_password(url: str, password: str) -> str:
    """`url` with its password replaced by `password`, URL-quoted: any character may appear in
    a password given apart from its URL (DATABASE_PASSWORD, REDIS_PASSWORD)."""
    parts = urlsplit(url)
    if not parts.hostname and not parts.path:
        raise ImproperlyConfigured(f"{url!r} is not a URL a password can be added to.")
    _, _, host = parts.netloc.rpartition("@")
    user = quote(unquote(parts.username), safe="") if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
