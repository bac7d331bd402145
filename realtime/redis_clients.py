"""Every Redis client of the service comes from here: the channel layer and its publisher,
presence, throttles and leases, the cache (CACHES) and the start-up check.

A Redis is described by a *host entry*, the dict that CHANNEL_LAYERS' `hosts` takes (the format
of channels_redis, so its layers take the same entry):

- plain: `{"address": "redis://[:password@]host:port/db", **client options}`;
- Sentinel: `{"sentinels": [(host, port), ...], "master_name": name, "sentinel_kwargs": {...},
  "db": n, "password": ..., **client options}`: each new connection asks the Sentinels which
  server is the primary of `master_name`, so a client follows a failover by itself (its broken
  connections fail, the next ones go to the new primary; a connection still open to a demoted
  primary fails on its first write with READONLY and reconnects).

redis-py asks the Sentinels only when it opens a connection, so on its own a client notices a
failover when its connection breaks: at once for a killed primary, but only when the Sentinels
turn a live old primary into a replica (SENTINEL FAILOVER: some seconds later) for a switch, and
a client that kept failing while no primary was elected is then in its retry back-off. So each
event loop with a Sentinel-managed client also watches the Sentinels' `+switch-master` events
(`PrimaryWatch`): on a switch of its primary, every client of the process drops its connections
and the next command goes to the new primary, and `on_switch` callbacks run (the channel layer's
listener resubscribes at once instead of finishing its back-off).

`redis_host()` builds the entry from REDIS_URL and, when REDIS_SENTINELS is set, the Sentinels
(tripsage/settings/base.py); REDIS_URL then gives only the database number and the password.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo
from redis.retry import Retry

from events.aio import per_loop

logger = logging.getLogger(__name__)

# Keys of a host entry that say where Redis is, as opposed to how to talk to it.
_WHERE = ("address", "sentinels", "master_name", "sentinel_kwargs")

# What every connection tells Redis it is (CLIENT SETINFO), worked out once: without it, each new
# connection of redis-py 7 looks its own version up in the installed packages' metadata, a tenth
# of a survivor's CPU while a reconnect storm grew its pools (bench S7; py-spy).
DRIVER_INFO = DriverInfo()


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    """ "host:port,host:port" (REDIS_SENTINELS) as [(host, port), ...]; a bad entry raises
    ImproperlyConfigured naming it."""
    sentinels = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":")
        host = host.strip("[]")  # [::1]:26379
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS: {item!r} is not host:port (for example "
                "REDIS_SENTINELS=10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379)."
            )
        sentinels.append((host, int(port)))
    return sentinels


def redis_host(
    url: str,
    sentinels: Sequence[tuple[str, int]] = (),
    master: str = "",
    sentinel_password: str | None = None,
    sentinel_timeout: float = 1.0,
    **options: Any,
) -> dict[str, Any]:
    """The host entry for `url`, or, with `sentinels`, for the primary they name `master`
    (database number, user name and password from `url`, whose host and port are then unused).
    Sentinel queries have their own short timeouts and no retries, whatever `options` say for
    the primary: a Sentinel that hangs or is down must not hold a connect."""
    if not sentinels:
        return {"address": url, **options}
    if not master:
        raise ImproperlyConfigured(
            "REDIS_SENTINELS is set: name the primary in REDIS_SENTINEL_MASTER."
        )
    parsed = redis.connection.parse_url(url)
    entry: dict[str, Any] = {
        "sentinels": [tuple(sentinel) for sentinel in sentinels],
        "master_name": master,
        "sentinel_kwargs": {
            "socket_timeout": sentinel_timeout,
            "socket_connect_timeout": sentinel_timeout,
            # No retries of one Sentinel: the client asks the next one instead.
            "retry": Retry(NoBackoff(), 0),
            **({"password": sentinel_password} if sentinel_password else {}),
        },
    }
    for key in ("db", "username", "password"):
        if parsed.get(key) is not None:
            entry[key] = parsed[key]
    if parsed.get("connection_class") is redis.connection.SSLConnection:
        entry["ssl"] = True
    entry.update(options)
    return entry


def describe(host: Mapping[str, Any]) -> str:
    """Where `host` points, without its password, for messages."""
    if "master_name" in host:
        sentinels = ",".join(f"{name}:{port}" for name, port in host["sentinels"])
        return f"the primary {host['master_name']!r} of the Sentinels {sentinels}"
    url = str(host["address"])
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _split(host: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    merged = {key: value for key, value in host.items() if key not in _WHERE}
    merged.setdefault("driver_info", DRIVER_INFO)
    merged.update(options)
    return merged


class _GuardedWrites:
    """A write on a connection that was closed under it (a primary switch closes the pools'
    connections in use too) fails as redis.ConnectionError, which every caller handles, instead
    of redis-py 7.4's AttributeError on the writer `disconnect` cleared (redis/redis-py#4287,
    fixed in 8.x; redis-py stays on 7.x for channels_redis#422). The writer is read once, and
    nothing is awaited between its check and the write."""

    _writer: asyncio.StreamWriter | None

    async def _send_packed_command(self, command: Iterable[bytes]) -> None:
        writer = self._writer
        if writer is None or writer.transport.is_closing():
            raise redis.ConnectionError("Connection closed while a command was being sent.")
        writer.writelines(command)
        await writer.drain()


class GuardedConnection(_GuardedWrites, aioredis.Connection):
    pass


class GuardedSSLConnection(_GuardedWrites, aioredis.SSLConnection):
    pass


class GuardedUnixConnection(_GuardedWrites, aioredis.UnixDomainSocketConnection):
    pass


class GuardedSentinelConnection(_GuardedWrites, aiosentinel.SentinelManagedConnection):
    pass


class GuardedSentinelSSLConnection(_GuardedWrites, aiosentinel.SentinelManagedSSLConnection):
    pass


_GUARDED: dict[type, type] = {
    aioredis.Connection: GuardedConnection,
    aioredis.SSLConnection: GuardedSSLConnection,
    aioredis.UnixDomainSocketConnection: GuardedUnixConnection,
}


class BlockingSentinelConnectionPool(
    aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool
):
    """A Sentinel-managed pool that waits for a free connection when full (redis-py's default
    pool raises "Too many connections" instead, which a connect storm reaches)."""


def async_client(
    host: Mapping[str, Any], *, pool_timeout: float | None = None, **options: Any
) -> aioredis.Redis:
    """An asyncio client for `host` (bound to the running event loop once used). With
    `pool_timeout`, a full pool waits that long for a connection; without, it raises."""
    kwargs = _split(host, options)
    if pool_timeout is not None:
        kwargs["timeout"] = pool_timeout
    pool: aioredis.ConnectionPool
    if "master_name" in host:
        sentinel = aiosentinel.Sentinel(
            host["sentinels"], sentinel_kwargs=host.get("sentinel_kwargs")
        )
        pool_class = (
            BlockingSentinelConnectionPool
            if pool_timeout is not None
            else aiosentinel.SentinelConnectionPool
        )
        kwargs["connection_class"] = (
            GuardedSentinelSSLConnection if kwargs.get("ssl") else GuardedSentinelConnection
        )
        pool = pool_class(host["master_name"], sentinel, **kwargs)
        watch = _watch(host)
        if watch is not None:  # made outside a loop: it notices a switch when its connections break
            watch.pools.add(pool)
    else:
        plain = (
            aioredis.BlockingConnectionPool if pool_timeout is not None else aioredis.ConnectionPool
        )
        scheme = aioredis.connection.parse_url(host["address"]).get(
            "connection_class", aioredis.Connection
        )
        kwargs["connection_class"] = _GUARDED[scheme]
        pool = plain.from_url(host["address"], **kwargs)
    return aioredis.Redis.from_pool(pool)


def sync_client(host: Mapping[str, Any], **options: Any) -> redis.Redis:
    """A blocking client for `host` (publishes after commit, start-up checks)."""
    if "master_name" in host:
        return redis.Redis.from_pool(_sync_sentinel_pool(host, options))
    return redis.Redis.from_url(host["address"], **_split(host, options))


def _sync_sentinel_pool(
    host: Mapping[str, Any], options: Mapping[str, Any]
) -> redis.sentinel.SentinelConnectionPool:
    """A blocking client's pool for a Sentinel-managed `host`, known to every PrimaryWatch."""
    sentinel = redis.sentinel.Sentinel(
        host["sentinels"], sentinel_kwargs=host.get("sentinel_kwargs")
    )
    pool = redis.sentinel.SentinelConnectionPool(
        host["master_name"], sentinel, **_split(host, options)
    )
    _sync_pools.add(pool)
    return pool


class SentinelCachePool:
    """CACHES' `pool_class` under Sentinel: Django's RedisCache calls `from_url(LOCATION,
    **OPTIONS)`; the OPTIONS carry the Sentinel keys of a host entry (settings: CACHES)."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> redis.sentinel.SentinelConnectionPool:
        options = {key: value for key, value in options.items() if value is not None}
        where = {key: options.pop(key) for key in _WHERE if key in options}
        # The URL's database, user and password; the Sentinels as the settings give them.
        host = {**redis_host(url, where["sentinels"], where["master_name"]), **where}
        return _sync_sentinel_pool(host, options)


def settings_host(url: str | None = None) -> dict[str, Any]:
    """The host entry of the service's Redis (settings.REDIS_HOST), or of `url` when another
    Redis is named (REALTIME_THROTTLE_REDIS_URL set apart): that one is used as a plain URL."""
    if url is None or url == settings.REDIS_URL:
        return dict(settings.REDIS_HOST)
    return {"address": url}


# -- following a switch of primary ------------------------------------------------------------

# Blocking clients' pools (publishes after commit, the cache): they have no loop of their own;
# every watch drops their connections on a switch.
_sync_pools: weakref.WeakSet[redis.ConnectionPool] = weakref.WeakSet()
# This loop's watches, by primary: (master name, Sentinels) -> PrimaryWatch.
_watches: Callable[[], dict[tuple[str, tuple[tuple[str, int], ...]], PrimaryWatch]] = per_loop(dict)


class PrimaryWatch:
    """One per event loop and Sentinel-managed primary: listens to the Sentinels'
    `+switch-master` (one Sentinel at a time, the next when it fails) and, on a switch of its
    primary, drops every connection of the process's clients and runs the `on_switch`
    callbacks."""

    RETRY_SECONDS = 1.0

    def __init__(self, host: Mapping[str, Any]) -> None:
        self.master = str(host["master_name"])
        self.sentinels = [tuple(sentinel) for sentinel in host["sentinels"]]
        # The subscription blocks between events: no read timeout, keepalive to notice a dead
        # Sentinel; connects are bounded like any Sentinel query.
        kwargs = dict(host.get("sentinel_kwargs") or {})
        kwargs["socket_timeout"] = None
        kwargs["socket_keepalive"] = True
        self.kwargs = kwargs
        self.pools: weakref.WeakSet[aioredis.ConnectionPool] = weakref.WeakSet()
        self.callbacks: list[Callable[[], None]] = []
        self.switches = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        turn = 0
        while True:
            name, port = self.sentinels[turn % len(self.sentinels)]
            turn += 1
            client = aioredis.Redis(host=name, port=port, **self.kwargs)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe("+switch-master")
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=None
                        )
                        if message is not None:
                            await self._switched(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning(
                    "watching Sentinel %s:%s for a switch of %r failed (%s); trying the next",
                    name,
                    port,
                    self.master,
                    type(error).__name__,
                )
                await asyncio.sleep(self.RETRY_SECONDS)
            finally:
                await client.aclose()

    async def _switched(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        fields = text.split()
        if not fields or fields[0] != self.master:
            return
        self.switches += 1
        logger.warning("Redis primary %r switched: %s", self.master, " ".join(fields[1:]))
        for pool in list(self.pools):
            pool.master_address = None  # type: ignore[attr-defined]
            await pool.disconnect(inuse_connections=True)
        for sync_pool in list(_sync_pools):
            # Idle connections only: one in use in another thread fails by itself (closed by
            # the Sentinels' reconfiguration, or READONLY), and its client retries once.
            await asyncio.to_thread(sync_pool.disconnect, False)
        for callback in list(self.callbacks):
            try:
                callback()
            except Exception:
                logger.exception("a primary-switch callback failed")


def _watch(host: Mapping[str, Any]) -> PrimaryWatch | None:
    """The running loop's watch of `host`'s primary, started on first use; None outside a loop."""
    try:
        watches = _watches()
    except RuntimeError:
        return None
    key = (str(host["master_name"]), tuple(tuple(item) for item in host["sentinels"]))
    watch = watches.get(key)
    if watch is None or watch.task.done():
        watch = watches[key] = PrimaryWatch(host)
    return watch


def on_switch(host: Mapping[str, Any], callback: Callable[[], None]) -> None:
    """Call `callback` on this event loop when the Sentinels switch `host`'s primary (nothing
    for a plain host, or outside a loop)."""
    watch = _watch(host) if "master_name" in host else None
    if watch is not None and callback not in watch.callbacks:
        watch.callbacks.append(callback)
