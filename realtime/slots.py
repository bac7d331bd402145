"""Concurrent sockets per user (REALTIME_MAX_CONNECTIONS_PER_USER), held across every process:
one sorted set per user of connection ids in Redis, each with a lease that the holding process
renews (a task, in one pipeline for all of its sockets); a process that dies leaves slots that
expire within one lease, and a slot Redis lost (a restart, FLUSHALL, a failover) is put back
from the process's live sockets at the next renewal. Without Redis, this process's sockets are
all there is (MemorySlots); while Redis is away, the user's sockets on this process count.

The half of realtime.throttling.Throttle that holds slots (it is mixed in there): the Redis
client, its health and its batched script calls are the throttle's.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

REDIS_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)

# KEYS[1] the user's slots; ARGV now, lease seconds, limit, connection. Returns {allowed, held}.
SLOT_SCRIPT = """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) == false and held >= tonumber(ARGV[3]) then
  return {0, held}
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000))
return {1, redis.call('ZCARD', KEYS[1])}
"""


class MemorySlots:
    def __init__(self) -> None:
        self.held: dict[str, set[str]] = defaultdict(set)

    def acquire(self, user: str, connection: str, limit: int) -> tuple[bool, int]:
        held = self.held[user]
        if connection not in held and len(held) >= limit:
            return False, len(held)
        held.add(connection)
        return True, len(held)

    def release(self, user: str, connection: str) -> None:
        held = self.held.get(user)
        if held is not None:
            held.discard(connection)
            if not held:
                del self.held[user]


class ConnectionSlots:
    """acquire_slot / release_slot and the lease renewer, on what Throttle provides."""

    client: aioredis.Redis | None
    prefix: str
    clock: Callable[[], float]
    slots: MemorySlots
    leased: dict[str, str]  # this process's slots in Redis: connection -> user
    renewer: asyncio.Task[None] | None
    _slot: Any  # SLOT_SCRIPT, registered on the client

    def _use_redis(self) -> bool:
        raise NotImplementedError

    def _redis_failed(self, error: BaseException, what: str) -> None:
        raise NotImplementedError

    def _redis_ok(self) -> None:
        raise NotImplementedError

    async def _script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        raise NotImplementedError

    async def acquire_slot(self, user_id: Any, connection_id: str) -> tuple[bool, int]:
        """Hold one of the user's REALTIME_MAX_CONNECTIONS_PER_USER sockets: (allowed, held)."""
        user, limit = str(user_id), settings.REALTIME_MAX_CONNECTIONS_PER_USER
        if self._use_redis():
            lease = settings.REALTIME_CONNECTION_LEASE_SECONDS
            try:
                allowed, held = await self._script(
                    self._slot,
                    [f"{self.prefix}slots:{user}"],
                    [self.clock(), lease, limit, connection_id],
                )
            except REDIS_ERRORS as error:
                self._redis_failed(error, "a connection-slot check")
            else:
                self._redis_ok()
                if allowed:
                    self.leased[connection_id] = user
                    self._ensure_renewer()
                return bool(allowed), int(held)
        if self.client is None:  # no Redis configured: this process's sockets are all there is
            return self.slots.acquire(user, connection_id, limit)
        # Redis is away: the user's sockets on this process count (a per-process cap until it
        # answers), and the new one is leased like any other, so that the renewer puts it in
        # Redis once it answers and the cap holds across processes again.
        held = sum(1 for owner in self.leased.values() if owner == user)
        if connection_id not in self.leased:
            if held >= limit:
                return False, held
            held += 1
        self.leased[connection_id] = user
        self._ensure_renewer()
        return True, held

    async def release_slot(self, user_id: Any, connection_id: str) -> None:
        user = str(user_id)
        self.slots.release(user, connection_id)
        # A slot is leased only through Redis, so a lease implies a client.
        if self.leased.pop(connection_id, None) is None or self.client is None:
            return
        try:
            await self.client.zrem(f"{self.prefix}slots:{user}", connection_id)
        except REDIS_ERRORS as error:
            self._redis_failed(error, "releasing a connection slot")  # the lease expires it

    def _ensure_renewer(self) -> None:
        if self.renewer is None or self.renewer.done():
            self.renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        """Extend this process's leases a few times per lease period, in one pipeline."""
        lease = settings.REALTIME_CONNECTION_LEASE_SECONDS
        while self.leased and self.client is not None:  # leases exist only with a client
            await asyncio.sleep(lease / 3)
            expiry = self.clock() + lease
            renewed = list(self.leased.items())
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    by_user: dict[str, dict[str, float]] = defaultdict(dict)
                    for connection, user in renewed:
                        by_user[user][connection] = expiry
                    for user, connections in by_user.items():
                        key = f"{self.prefix}slots:{user}"
                        # Without xx: a slot Redis lost (restart, FLUSHALL, failover) is put
                        # back from this process's live sockets.
                        pipe.zadd(key, connections)
                        pipe.pexpire(key, math.ceil(lease * 1000))
                    await pipe.execute()
                # A socket released while this was on its way sent its ZREM on another
                # connection, which Redis may have applied first: remove it again.
                gone = [(c, u) for c, u in renewed if c not in self.leased]
                if gone:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for connection, user in gone:
                            pipe.zrem(f"{self.prefix}slots:{user}", connection)
                        await pipe.execute()
            except REDIS_ERRORS as error:
                self._redis_failed(error, "renewing connection slots")
