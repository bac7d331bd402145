"""Start-up checks: misconfiguration fails at start, not on the first message."""

from __future__ import annotations

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def require_channel_layer() -> None:
    """With REDIS_URL set, Redis must answer before the server takes any socket."""
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        return
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ImproperlyConfigured(
            f"REDIS_URL is set but Redis at {_safe(url)} did not answer ({exc}): start it "
            "(for example: redis-server --daemonize yes --port 6379) or unset REDIS_URL to run "
            "on the in-memory channel layer (one process only)."
        ) from None
    finally:
        client.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
