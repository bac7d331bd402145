"""Rate limits held across every server process: token buckets and connection slots in Redis.

- Messages: one token bucket per user and connection type. It holds `burst` messages and refills
  at `per_minute` per `window` seconds; a message takes one token or is refused. A user's sockets
  (on any process) share the bucket. Beside it, a counter of the messages accepted in the current
  fixed window (aligned on multiples of `window` since the epoch: whole minutes), in the same
  script: the seed's `current_usage` and `remaining` (`limit - current_usage`). It reports; the
  bucket decides.
- `auth.refresh`: one bucket per user (all connection types, all sockets) holding
  REALTIME_REFRESH_BURST, refilled at REALTIME_REFRESH_PER_MINUTE per minute. A refused refresh is
  not looked at (no token check, no database query).
- New connections: one bucket per client IP holding REALTIME_CONNECTS_PER_MINUTE_PER_IP, refilled
  at that many per minute.
- Concurrent sockets: one sorted set per user of connection ids, each with a lease the holding
  process renews; a process that dies leaves slots that expire within one lease (realtime.slots,
  mixed into Throttle).

Every check is one atomic round trip (a Lua script). With no Redis configured, or while Redis does
not answer, the same buckets live in this process (logged once, counted in
tripsage_rate_limiter_fallbacks_total); no socket is closed because Redis is away.
The clock is injectable, so tests refill buckets without sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from events.aio import per_loop
from events.batch import Batcher
from metrics import instruments
from realtime import redis_clients
from realtime.slots import REDIS_ERRORS as _REDIS_ERRORS
from realtime.slots import SLOT_SCRIPT, ConnectionSlots, MemorySlots

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_minute` messages per `window` seconds with at most `burst` at once."""

    per_minute: int
    burst: int
    window: float = 60.0

    @property
    def per_second(self) -> float:
        return self.per_minute / self.window


def window_start(rate: Rate, now: float) -> float:
    """The start of the fixed window `now` falls in."""
    return math.floor(now / rate.window) * rate.window


def _utc(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(math.ceil(timestamp), UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    tokens: float  # left in the bucket after this decision
    rate: Rate
    now: float
    used: int = 0  # messages accepted in the current fixed window, this one included

    @property
    def remaining(self) -> int:
        """Messages that may be sent right now."""
        return max(0, math.floor(self.tokens + 1e-9))

    @property
    def retry_after(self) -> float:
        """Seconds until the next message would be accepted (0 if one would be now)."""
        missing = 1 - self.tokens
        return 0.0 if missing <= 1e-9 else math.ceil(missing / self.rate.per_second * 1000) / 1000

    @property
    def reset_at(self) -> float:
        """When the bucket is full again."""
        return self.now + max(0.0, self.rate.burst - self.tokens) / self.rate.per_second

    def refusal_details(self, limit_type: str | None = None) -> dict[str, Any]:
        """The seed's RATE_LIMIT_EXCEEDED details, plus the burst (and which budget refused:
        `limit_type`, when given)."""
        details: dict[str, Any] = {
            "limit": self.rate.per_minute,
            "remaining": 0,
            "retry_after": max(self.retry_after, 0.001),
            "window_seconds": int(self.rate.window),
            "burst": self.rate.burst,
        }
        if limit_type is not None:
            details["limit_type"] = limit_type
        return details

    def bucket_fields(self) -> dict[str, Any]:
        """A bucket's own figures (`rate_limit_status.auth_refresh`): `remaining`, what may be
        taken right now; `reset_at`, when the bucket is full again."""
        return {
            "limit": self.rate.per_minute,
            "burst": self.rate.burst,
            "remaining": self.remaining,
            "window_seconds": int(self.rate.window),
            "reset_at": _utc(self.reset_at),
        }

    def status_fields(self) -> dict[str, Any]:
        """The seed's `rate_limit_status` fields with the seed's meaning (`current_usage`: the
        messages of this window; `remaining`: `limit` minus those, never below 0; `reset_at`:
        the window's end), and the bucket's: `burst`, `burst_remaining` (what may be sent right
        now) and `burst_reset_at` (when the bucket is full again). docs/decisions.md."""
        return {
            "current_usage": self.used,
            "limit": self.rate.per_minute,
            "remaining": max(0, self.rate.per_minute - self.used),
            "reset_at": _utc(window_start(self.rate, self.now) + self.rate.window),
            "window_seconds": int(self.rate.window),
            "burst": self.rate.burst,
            "burst_remaining": self.remaining,
            "burst_reset_at": _utc(self.reset_at),
        }


# -- in-process buckets and slots --------------------------------------------------------------


class MemoryBuckets:
    def __init__(self) -> None:
        self.state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.windows: dict[str, tuple[float, int]] = {}  # key -> (window start, used)

    def take(self, key: str, rate: Rate, now: float, cost: int = 1) -> Decision:
        tokens, at = self.state.get(key, (float(rate.burst), now))
        if now > at:
            tokens, at = min(float(rate.burst), tokens + (now - at) * rate.per_second), now
        allowed = tokens >= cost - 1e-6  # float noise: 0.9999999 tokens is one token
        start = window_start(rate, now)
        counted_in, used = self.windows.get(key, (start, 0))
        if counted_in != start:
            used = 0
        if allowed and cost:
            tokens = max(0.0, tokens - cost)
            used += cost
            self.windows[key] = (start, used)
        if cost:
            self.state[key] = (tokens, at)
            if len(self.state) > 100_000:  # full buckets carry no information: forget them
                self._prune(rate, now)
        return Decision(allowed, tokens, rate, now, used)

    def _prune(self, rate: Rate, now: float) -> None:
        for key, (tokens, at) in list(self.state.items()):
            if tokens + (now - at) * rate.per_second >= rate.burst:
                del self.state[key]
        start = window_start(rate, now)
        for key, (counted_in, _) in list(self.windows.items()):
            if counted_in != start:
                del self.windows[key]


# -- Redis ----------------------------------------------------------------------------------

# One or more buckets, each: KEYS in pairs (the bucket, the counter of its current window), ARGV
# in fives (capacity, tokens per second, now, cost, the window's end). Cost 0 looks and writes
# nothing. Returns {allowed, tokens, messages accepted in the window} for each, one after another.
_BUCKET = """
local out = {}
for i = 0, #KEYS / 2 - 1 do
  local bucket, window = KEYS[2 * i + 1], KEYS[2 * i + 2]
  local capacity = tonumber(ARGV[5 * i + 1])
  local rate = tonumber(ARGV[5 * i + 2])
  local now = tonumber(ARGV[5 * i + 3])
  local cost = tonumber(ARGV[5 * i + 4])
  local state = redis.call('HMGET', bucket, 't', 'at')
  local tokens = tonumber(state[1])
  local at = tonumber(state[2])
  if tokens == nil or at == nil then
    tokens = capacity
    at = now
  end
  if now > at then
    tokens = math.min(capacity, tokens + (now - at) * rate)
    at = now
  end
  local allowed = 0
  if tokens >= cost - 1e-6 then  -- float noise: 0.9999999 tokens is one token
    allowed = 1
    tokens = math.max(0, tokens - cost)
  end
  local used = 0
  if allowed == 1 and cost > 0 then
    used = redis.call('INCRBY', window, cost)
    redis.call('PEXPIRE', window, math.ceil((tonumber(ARGV[5 * i + 5]) - now) * 1000) + 1000)
  else
    used = tonumber(redis.call('GET', window) or '0')
  end
  if cost > 0 then
    redis.call('HSET', bucket, 't', string.format('%.6f', tokens), 'at', string.format('%.6f', at))
    redis.call('PEXPIRE', bucket, math.ceil((capacity - tokens) / rate * 1000) + 1000)
  end
  out[3 * i + 1] = allowed
  out[3 * i + 2] = string.format('%.6f', tokens)
  out[3 * i + 3] = used
end
return out
"""


class Throttle(ConnectionSlots):
    """One per event loop (`throttle()`): the buckets and slots of this process, in Redis when
    REALTIME_THROTTLE_REDIS_URL (default: REDIS_URL) is set."""

    RETRY_REDIS_SECONDS = 5.0

    def __init__(self, url: str | None = None, clock: Clock = time.time) -> None:
        self.url = url if url is not None else settings.REALTIME_THROTTLE_REDIS_URL
        self.clock = clock
        self.prefix = f"{settings.REALTIME_THROTTLE_PREFIX}:rl:"
        self.buckets = MemoryBuckets()
        self.slots = MemorySlots()
        self.client: aioredis.Redis | None = None
        if self.url:
            host = redis_clients.settings_host(self.url)
            self.client = redis_clients.async_client(
                host,
                socket_timeout=settings.REALTIME_THROTTLE_REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=settings.REALTIME_THROTTLE_REDIS_TIMEOUT_SECONDS,
                max_connections=settings.REDIS_MAX_CONNECTIONS,
            )
            self._bucket = self.client.register_script(_BUCKET)
            self._slot = self.client.register_script(SLOT_SCRIPT)
            # The checks of sockets opening (or sending) at the same time share one pipeline.
            self._scripts: Batcher[tuple[int, Any, tuple[str, ...], tuple[Any, ...]], Any] = (
                Batcher(self._run_scripts, max_batch=200)
            )
            self._calls = itertools.count()
            # A new primary answers: no need to wait out RETRY_REDIS_SECONDS.
            redis_clients.on_switch(host, self._primary_switched)
        self.redis_down_until = 0.0
        self.fallback_logged = False
        # This process's slots in Redis, connection -> user (one small entry per socket), renewed
        # by a task.
        self.leased: dict[str, str] = {}
        self.renewer: asyncio.Task[None] | None = None

    # -- Redis health -----------------------------------------------------------------------

    def _use_redis(self) -> bool:
        return self.client is not None and time.monotonic() >= self.redis_down_until

    def _redis_failed(self, error: BaseException, what: str) -> None:
        instruments.RATE_LIMITER_FALLBACKS.inc()
        self.redis_down_until = time.monotonic() + self.RETRY_REDIS_SECONDS
        if not self.fallback_logged:
            self.fallback_logged = True
            logger.warning(
                "rate limiter: Redis unreachable (%s during %s); limiting in this process until "
                "it answers again",
                type(error).__name__,
                what,
            )

    def _primary_switched(self) -> None:
        self.redis_down_until = 0.0

    def _redis_ok(self) -> None:
        if self.fallback_logged:
            self.fallback_logged = False
            logger.warning("rate limiter: Redis answers again; limits are shared across processes")

    async def _script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """One script call, in a pipeline with the others asked for meanwhile (events.batch):
        a connect storm costs a round trip per batch, not three per socket."""
        result = await self._scripts((next(self._calls), script, tuple(keys), tuple(args)))
        if isinstance(result, Exception):
            raise result
        return result

    async def _run_scripts(
        self, calls: list[tuple[int, Any, tuple[str, ...], tuple[Any, ...]]]
    ) -> dict[tuple[int, Any, tuple[str, ...], tuple[Any, ...]], Any]:
        """EVALSHA in one pipeline; scripts Redis does not hold (a restart, a new primary, a
        first call) are loaded and their calls sent again. redis-py's own script pipelining
        costs a SCRIPT EXISTS round trip per pipeline instead."""
        client = self.client
        assert client is not None  # only called with Redis configured
        results: dict[tuple[int, Any, tuple[str, ...], tuple[Any, ...]], Any] = {}
        pending = calls
        for _ in range(2):
            async with client.pipeline(transaction=False) as pipe:
                for _, script, keys, args in pending:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                # A script's own error is its caller's; a connection error fails the batch.
                answers = await pipe.execute(raise_on_error=False)
            missing = []
            for call, answer in zip(pending, answers, strict=True):
                if isinstance(answer, redis.exceptions.NoScriptError):
                    missing.append(call)
                else:
                    results[call] = answer
            if not missing:
                break
            for script in {call[1] for call in missing}:
                await client.script_load(script.script)
            pending = missing
        for call in pending:
            results.setdefault(call, redis.exceptions.NoScriptError("script not loaded"))
        return results

    # -- buckets ----------------------------------------------------------------------------

    async def take(self, key: str, rate: Rate, cost: int = 1, *, batched: bool = False) -> Decision:
        """Take `cost` tokens from bucket `key` (cost 0: look without taking). `batched`: in a
        pipeline with the other checks of sockets opening meanwhile (a connect's checks);
        otherwise on its own, at once (a live message's: behind a storm's batch it waited
        several turns of a busy event loop, bench S7)."""
        return (await self._buckets([(key, rate)], cost, batched, "a rate-limit check"))[0]

    async def look(
        self, buckets: list[tuple[str, Rate]], *, batched: bool = False
    ) -> list[Decision]:
        """Where several buckets stand, taking nothing: what `take` with cost 0 answers for each,
        in one script call (a connect's opening status looks at two)."""
        return await self._buckets(buckets, 0, batched, "a rate-limit look")

    async def _buckets(
        self, buckets: list[tuple[str, Rate]], cost: int, batched: bool, what: str
    ) -> list[Decision]:
        """`cost` from each bucket, in one script call (or in this process without Redis)."""
        now = self.clock()
        if self._use_redis():
            keys: list[str] = []
            args: list[Any] = []
            for key, rate in buckets:
                start = window_start(rate, now)
                # The window's key names its start: a new window starts from nothing.
                keys += [self.prefix + key, f"{self.prefix}{key}:w{int(start)}"]
                args += [rate.burst, rate.per_second, now, cost, start + rate.window]
            try:
                if batched:
                    answer = await self._script(self._bucket, keys, args)
                else:
                    assert self.client is not None  # _use_redis
                    answer = await self._bucket(keys, args, client=self.client)
            except _REDIS_ERRORS as error:
                self._redis_failed(error, what)
            else:
                self._redis_ok()
                return [
                    Decision(
                        bool(answer[3 * i]),
                        float(answer[3 * i + 1]),
                        rate,
                        now,
                        int(answer[3 * i + 2]),
                    )
                    for i, (_, rate) in enumerate(buckets)
                ]
        return [self.buckets.take(key, rate, now, cost) for key, rate in buckets]

    def message_bucket(self, user_id: Any, connection_type: str) -> tuple[str, Rate]:
        """The key and rate of a user's message budget on a connection type."""
        return f"msg:{connection_type}:{user_id}", message_rate(connection_type)

    def refresh_bucket(self, user_id: Any) -> tuple[str, Rate]:
        """The key and rate of a user's `auth.refresh` bucket."""
        return f"refresh:{user_id}", refresh_rate()

    async def message(
        self, user_id: Any, connection_type: str, cost: int = 1, *, batched: bool = False
    ) -> Decision:
        key, rate = self.message_bucket(user_id, connection_type)
        return await self.take(key, rate, cost, batched=batched)

    async def refresh(self, user_id: Any, cost: int = 1, *, batched: bool = False) -> Decision:
        """One `auth.refresh` of the user's, on any socket (cost 0: look)."""
        key, rate = self.refresh_bucket(user_id)
        return await self.take(key, rate, cost, batched=batched)

    async def connect(self, ip: str) -> Decision:
        per_minute = settings.REALTIME_CONNECTS_PER_MINUTE_PER_IP
        return await self.take(f"ip:{ip}", Rate(per_minute, per_minute), batched=True)


def message_rate(connection_type: str) -> Rate:
    per_minute, burst, window = settings.REALTIME_RATE_LIMITS[str(connection_type)]
    return Rate(per_minute, burst, window)


def refresh_rate() -> Rate:
    return Rate(settings.REALTIME_REFRESH_PER_MINUTE, settings.REALTIME_REFRESH_BURST)


throttle = per_loop(Throttle)
