"""realtime.redis_clients: every Redis client of the service, on a plain URL or on the primary
that Redis Sentinel names, following a failover by itself (a real primary, replica and three
Sentinels of the test's own: tests.redis_servers)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured

from realtime import redis_clients
from realtime.layers import FanoutChannelLayer
from tests.conftest import require_redis_url
from tests.redis_servers import SentinelGroup

FAULTS = ["failover", "kill"]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", []),
        ("10.0.0.5:26379", [("10.0.0.5", 26379)]),
        (" a:1 , b:2 ,", [("a", 1), ("b", 2)]),
        ("[::1]:26379", [("::1", 26379)]),
    ],
)
def test_sentinels_parse(text: str, parsed: list[tuple[str, int]]) -> None:
    assert redis_clients.parse_sentinels(text) == parsed


@pytest.mark.parametrize("bad", ["sentinel", "a:port", "a:0", "a:65536", ":26379", "a:1,b"])
def test_a_bad_sentinel_address_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        redis_clients.parse_sentinels(bad)
    assert "REDIS_SENTINELS" in str(error.value) and "host:port" in str(error.value)


def test_the_url_gives_database_user_and_password_under_sentinel() -> None:
    host = redis_clients.redis_host(
        "redis://app:p%40ss%3Aword@ignored:1/3", [("s1", 26379)], "tripsage", socket_timeout=None
    )
    assert host["db"] == 3 and host["username"] == "app" and host["password"] == "p@ss:word"
    assert host["master_name"] == "tripsage" and host["sentinels"] == [("s1", 26379)]
    # The Sentinels are asked with short timeouts, whatever the primary's connections use.
    sentinel_kwargs = host["sentinel_kwargs"]
    assert (sentinel_kwargs["socket_timeout"], sentinel_kwargs["socket_connect_timeout"]) == (1, 1)
    assert sentinel_kwargs["retry"].get_retries() == 0  # the next Sentinel, not the same again
    assert host["socket_timeout"] is None and "address" not in host
    assert redis_clients.describe(host) == "the primary 'tripsage' of the Sentinels s1:26379"


def test_a_sentinel_without_a_master_name_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINEL_MASTER"):
        redis_clients.redis_host("redis://x/0", [("s1", 26379)], "")


def test_without_sentinels_the_url_is_the_host() -> None:
    host = redis_clients.redis_host("redis://:secret@cache:6380/2", socket_timeout=1)
    assert host == {"address": "redis://:secret@cache:6380/2", "socket_timeout": 1}
    assert redis_clients.describe(host) == "redis://***@cache:6380/2"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    sentinels = SentinelGroup(tmp_path)
    yield sentinels
    sentinels.stop()


def _host(group: SentinelGroup, **options: Any) -> dict[str, Any]:
    sentinels = [("127.0.0.1", port) for port in group.sentinel_ports]
    return redis_clients.redis_host("redis://sentinel/0", sentinels, group.master, **options)


def _fault(group: SentinelGroup, fault: str) -> int:
    return group.failover() if fault == "failover" else group.kill_primary()


def _eventually(attempt: Callable[[], Any], timeout: float = 30.0) -> tuple[Any, int]:
    """Call `attempt` until it stops raising Redis errors; returns its result and how many
    attempts failed first (a client's first command after a failover may still meet the
    connection it held to the old primary)."""
    failures = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt(), failures
        except redis_py.RedisError:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("fault", FAULTS)
def test_every_client_follows_the_primary(group: SentinelGroup, fault: str) -> None:
    """The blocking client (publishes after commit), the cache, an asyncio client (presence,
    throttles) and two processes' channel layers, all on the Sentinel-managed primary: after
    the fault each finds the new primary by itself, the layer's listener is subscribed again
    (its callbacks told, so sockets catch up from the log) and group messages flow between the
    processes again."""
    host = _host(group, socket_timeout=2, socket_connect_timeout=2)
    client = redis_clients.sync_client(host)
    sentinel_keys = {key: host[key] for key in ("sentinels", "master_name", "sentinel_kwargs")}
    options = {"pool_class": "realtime.redis_clients.SentinelCachePool", "socket_timeout": 2}
    cache = RedisCache("redis://sentinel/0", {"OPTIONS": {**options, **sentinel_keys}})
    layer_host = {**host, "socket_timeout": None}
    group_name = f"trip-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[int, list[int]]:
        aio = redis_clients.async_client(host, pool_timeout=5, max_connections=4)
        sender = FanoutChannelLayer(hosts=[layer_host])
        receiver = FanoutChannelLayer(hosts=[layer_host])
        resubscribed = asyncio.Event()
        receiver.on_resubscribed(resubscribed.set)
        channel = await receiver.new_channel()
        await receiver.group_add(group_name, channel)
        await sender.group_send(group_name, {"type": "x", "n": 0})
        got = [(await asyncio.wait_for(receiver.receive(channel), 5))["n"]]
        client.set("before", "1")
        cache.set("cached-before", 1)
        await aio.set("aio-before", "1")
        assert client.execute_command("WAIT", 1, 5000) == 1  # replicated: survives the fault

        await asyncio.to_thread(_fault, group, fault)

        await asyncio.to_thread(_eventually, lambda: client.set("after", "2"))
        await asyncio.to_thread(_eventually, lambda: cache.set("cached-after", 2))
        deadline = time.monotonic() + 30
        while True:
            try:
                await aio.set("aio-after", "2")
                break
            except redis_py.RedisError:
                assert time.monotonic() < deadline, "the asyncio client never found the primary"
                await asyncio.sleep(0.2)
        await aio.aclose()
        await asyncio.wait_for(resubscribed.wait(), 30)
        # Publishes until one arrives: one may still meet a connection to the old primary.
        for n in range(1, 200):
            try:
                await sender.group_send(group_name, {"type": "x", "n": n})
            except (redis_py.RedisError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            try:
                got.append((await asyncio.wait_for(receiver.receive(channel), 1))["n"])
                break
            except TimeoutError:
                continue
        return int(receiver._local().pubsub.connection.port), got

    subscribed_at, got = asyncio.run(run())
    new = group.primary_port()
    on_new = redis_py.Redis(port=new)
    # The writes after the fault are on the new primary, beside what it had replicated before.
    assert on_new.get("after") == b"2" and on_new.get("before") == b"1"
    assert on_new.get("aio-after") == b"2" and on_new.get("aio-before") == b"1"
    assert cache.get("cached-after") == 2 and cache.get("cached-before") == 1
    assert len(got) == 2, "no group message reached the other process after the fault"
    assert subscribed_at == new  # the listener is subscribed on the new primary


def test_a_switch_moves_every_client_before_the_old_primary_is_demoted(
    group: SentinelGroup,
) -> None:
    """SENTINEL FAILOVER leaves the old primary taking writes for some seconds, until the
    Sentinels demote it (and what it took then is lost). The process watches `+switch-master`:
    once the switch is announced, its clients write to the new primary, not the old one."""
    host = _host(group, socket_timeout=2)

    async def run() -> tuple[int, int, bytes]:
        client = redis_clients.async_client(host, pool_timeout=5)
        await client.set("before", "1")  # a connection held open to the old primary
        watch = redis_clients._watch(host)
        old = group.primary_port()
        new = await asyncio.to_thread(group.failover, False)
        deadline = time.monotonic() + 30
        while not watch.switches:
            assert time.monotonic() < deadline, "the switch was never announced"
            await asyncio.sleep(0.05)
        await client.set("after-switch", "2")
        role = redis_py.Redis(port=old).role()[0]  # the old primary, asked at once
        await client.aclose()
        return old, new, role

    old, new, role_of_old = asyncio.run(run())
    assert new != old
    assert redis_py.Redis(port=new).get("after-switch") == b"2"
    # Not vacuous: the old primary was still a primary when the write went to the new one.
    assert role_of_old == b"master", "the old primary was demoted first; nothing was shown"


async def test_new_connections_name_the_client_without_looking_up_its_version(monkeypatch):
    """A storm grows the pools by hundreds of connections: each one tells Redis it is redis-py
    at its version (CLIENT SETINFO), from a DriverInfo worked out once, not from the installed
    packages' metadata per connection (a tenth of a survivor's CPU, bench S7)."""
    import importlib.metadata

    lookups: list[str] = []
    real_version = importlib.metadata.version

    def counted(name: str) -> str:
        lookups.append(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", counted)
    host = redis_clients.settings_host(require_redis_url())
    client = redis_clients.async_client(host, max_connections=10)
    names = f"tripsage-test-{uuid.uuid4().hex[:8]}"
    try:
        # Five commands at once: five new connections.
        await asyncio.gather(*(client.client_setname(names) for _ in range(5)))
        mine = [c for c in await client.client_list() if c["name"] == names]
        made = list(client.connection_pool._available_connections)
    finally:
        await client.aclose()
    assert "redis" not in lookups
    assert len(mine) >= 5
    # What CLIENT SETINFO sends (Redis 7.2 and later show it as lib-name and lib-ver).
    assert made and all(c.driver_info is redis_clients.DRIVER_INFO for c in made)
    assert redis_clients.DRIVER_INFO.formatted_name == "redis-py"
    assert redis_clients.DRIVER_INFO.lib_version == real_version("redis")


@pytest.mark.parametrize("kind", ["plain", "sentinel"])
async def test_a_connection_closed_under_a_command_fails_it_as_a_redis_error(
    kind: str, tmp_path: Path
) -> None:
    """A switch of primary closes every connection of the pools, those in use too (so that
    subscriptions move): a command that was writing on one must fail as a Redis connection error,
    which every caller handles (the rate limiter falls back to this process), not as redis-py
    7.4's AttributeError on the writer it cleared (redis/redis-py#4287, fixed in 8.x, which this
    project cannot take yet: channels_redis#422). It answered SERVER_ERROR to an edit sent during
    a failover (tests/deploy/test_failover.py, in a CI run)."""
    group = SentinelGroup(tmp_path) if kind == "sentinel" else None
    try:
        host = _host(group) if group else redis_clients.settings_host(require_redis_url())
        client = redis_clients.async_client(host, socket_timeout=1)
        connection = await client.connection_pool.get_connection()
        try:
            await connection.connect()
            # The command is on its way: its write is a task of its own (socket_timeout)...
            sending = asyncio.create_task(connection.send_packed_command(b"PING\r\n"))
            await asyncio.sleep(0)
            # ...when the switch closes the connection (a pool's disconnect closes each of its
            # connections; nowait, as an error on it does, clears the writer at once).
            await connection.disconnect(nowait=True)
            with pytest.raises(redis_py.ConnectionError):
                await sending
        finally:
            await client.connection_pool.release(connection)
            await client.aclose()
    finally:
        if group:
            group.stop()
