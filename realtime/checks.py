"""Start-up checks: misconfiguration fails at start, not on the first message."""

from __future__ import annotations

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from realtime import redis_clients


def require_channel_layer() -> None:
    """With REDIS_URL set, Redis (through the Sentinels, when REDIS_SENTINELS is set) must answer
    before the server takes any socket."""
    if not getattr(settings, "REDIS_URL", None):
        return
    host = redis_clients.settings_host()
    client = redis_clients.sync_client(host, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ImproperlyConfigured(
            f"REDIS_URL is set but Redis at {redis_clients.describe(host)} did not answer ({exc}): "
            "start it (for example: redis-server --daemonize yes --port 6379) or unset REDIS_URL "
            "to run on the in-memory channel layer (one process only)."
        ) from None
    finally:
        client.close()
