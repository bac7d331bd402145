"""Rate limits: token buckets with an injected clock (no sleeping), in Redis and in-process,
the fallback when Redis is away, and connection slots."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import REGISTRY

from realtime.throttling import Rate, Throttle, message_rate
from tests.conftest import require_redis_url
from tests.redis_servers import RedisServer
from tripsage.env import env_rate_limits


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["redis", "memory"])
def limiter(request, settings):
    """The same limiter over Redis and in this process; a fresh key space per test."""
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    clock = Clock()
    url = require_redis_url() if request.param == "redis" else ""
    return Throttle(url=url, clock=clock), clock


def test_the_seed_table_is_the_default():
    assert message_rate("chat") == Rate(120, 20)
    assert message_rate("agent_status") == Rate(60, 10)
    assert message_rate("trip_collaboration") == Rate(300, 50)
    assert message_rate("notifications") == Rate(30, 5)


async def test_burst_plus_one_is_refused(limiter):
    throttle, _ = limiter
    decisions = [await throttle.message(1, "chat") for _ in range(21)]
    assert all(d.allowed for d in decisions[:20])
    assert [d.remaining for d in decisions[:3]] == [19, 18, 17]
    refused = decisions[20]
    assert not refused.allowed
    # 120 per minute refill one message every 0.5 s.
    assert refused.refusal_details() == {
        "limit": 120,
        "remaining": 0,
        "retry_after": 0.5,
        "window_seconds": 60,
        "burst": 20,
    }


async def test_refreshes_have_their_own_bucket_per_user(limiter, settings):
    settings.REALTIME_REFRESH_PER_MINUTE, settings.REALTIME_REFRESH_BURST = 6, 3
    throttle, clock = limiter
    assert [(await throttle.refresh(1)).allowed for _ in range(4)] == [True] * 3 + [False]
    refused = await throttle.refresh(1)
    # 6 per minute: one every 10 s.
    assert refused.refusal_details("auth.refresh") == {
        "limit": 6,
        "remaining": 0,
        "retry_after": 10.0,
        "window_seconds": 60,
        "burst": 3,
        "limit_type": "auth.refresh",
    }
    # Apart from the message budget and from other users; a look takes nothing.
    assert (await throttle.message(1, "chat")).allowed
    assert (await throttle.refresh(2)).allowed
    look = await throttle.refresh(1, 0)
    assert look.bucket_fields() == {
        "limit": 6,
        "burst": 3,
        "remaining": 0,
        "window_seconds": 60,
        "reset_at": "2027-01-15T08:00:30Z",
    }
    clock.advance(10)
    assert (await throttle.refresh(1)).allowed
    assert not (await throttle.refresh(1)).allowed


async def test_one_look_at_several_buckets_answers_as_a_look_at_each_and_takes_nothing(limiter):
    """The opening `rate_limit_status` looks at the message budget and the refresh bucket in
    one script call: the same figures as a look at each, nothing spent, on Redis and in memory."""
    throttle, clock = limiter
    for _ in range(3):
        await throttle.message(7, "chat")
    await throttle.refresh(7)
    clock.advance(0.5)
    buckets = [throttle.message_bucket(7, "chat"), throttle.refresh_bucket(7)]
    together = await throttle.look(buckets)
    batched = await throttle.look(buckets, batched=True)
    each = [await throttle.message(7, "chat", 0), await throttle.refresh(7, 0)]
    for decisions in (together, batched):
        assert [d.status_fields() for d in decisions] == [d.status_fields() for d in each]
        assert [d.bucket_fields() for d in decisions] == [d.bucket_fields() for d in each]
    assert together[0].status_fields()["current_usage"] == 3
    # Nothing taken: the budget still holds what three messages left of it.
    assert (await throttle.look(buckets))[0].status_fields() == each[0].status_fields()


async def test_the_budget_refills_at_the_per_minute_rate(limiter):
    throttle, clock = limiter
    for _ in range(5):
        assert (await throttle.message(1, "notifications")).allowed
    assert not (await throttle.message(1, "notifications")).allowed
    # 30 per minute: one message every 2 s, never more than the burst of 5.
    clock.advance(1.9)
    assert not (await throttle.message(1, "notifications")).allowed
    clock.advance(0.1)
    assert (await throttle.message(1, "notifications")).allowed
    assert not (await throttle.message(1, "notifications")).allowed
    clock.advance(3600)
    results = [(await throttle.message(1, "notifications")).allowed for _ in range(6)]
    assert results == [True] * 5 + [False]
    # Sustained: over one minute at the limit, 30 more messages and no more.
    accepted = 0
    for _ in range(120):
        clock.advance(0.5)
        accepted += (await throttle.message(1, "notifications")).allowed
    assert accepted == 30


async def test_other_users_and_connection_types_are_untouched(limiter):
    throttle, _ = limiter
    for _ in range(50):
        await throttle.message(1, "trip_collaboration")
    assert not (await throttle.message(1, "trip_collaboration")).allowed
    assert (await throttle.message(2, "trip_collaboration")).remaining == 49
    assert (await throttle.message(1, "chat")).remaining == 19


async def test_status_fields_follow_the_seed_format(limiter):
    """The seed's fields with the seed's meaning: `current_usage` is the messages counted in this
    minute's window, `remaining` = `limit` - `current_usage`, `reset_at` the window's end. The
    bucket (what may be sent right now) is in the added `burst`, `burst_remaining` and
    `burst_reset_at` (docs/protocol.md, "Rate limits")."""
    throttle, clock = limiter  # the clock starts on a minute: 2027-01-15T08:00:00Z
    for _ in range(5):
        await throttle.message(7, "chat")
    clock.advance(30)
    for _ in range(3):
        await throttle.message(7, "chat")
    status = (await throttle.message(7, "chat", 0)).status_fields()
    assert status["limit"] == 120 and status["window_seconds"] == 60
    assert status["current_usage"] == 8 and status["remaining"] == 112
    assert status["reset_at"] == "2027-01-15T08:01:00Z"
    # The bucket refilled in 30 s (two per second) and three were taken since.
    assert status["burst"] == 20 and status["burst_remaining"] == 17
    # Three missing tokens at two per second: full again 1.5 s from now (rounded up).
    assert status["burst_reset_at"] == "2027-01-15T08:00:32Z"
    # Looking does not take.
    again = (await throttle.message(7, "chat", 0)).status_fields()
    assert again["current_usage"] == 8 and again["burst_remaining"] == 17

    # A new window starts from nothing.
    clock.advance(30)
    status = (await throttle.message(7, "chat", 0)).status_fields()
    assert status["current_usage"] == 0 and status["remaining"] == 120
    assert status["reset_at"] == "2027-01-15T08:02:00Z"


async def test_refused_messages_are_not_usage_and_remaining_never_goes_below_zero(limiter):
    throttle, clock = limiter
    decisions = [await throttle.message(8, "notifications") for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    status = decisions[-1].status_fields()
    assert status["current_usage"] == 5 and status["remaining"] == 25
    assert status["burst_remaining"] == 0
    # The bucket lets one more through every 2 s: over the minute, usage reaches the limit
    # (5 + 27 = 32 accepted > 30 per minute in one fixed window) and `remaining` stays 0.
    for _ in range(27):
        clock.advance(2)
        assert (await throttle.message(8, "notifications")).allowed
    clock.advance(1.5)  # 55.5 s: still the first window
    status = (await throttle.message(8, "notifications", 0)).status_fields()
    assert status["current_usage"] == 32 and status["remaining"] == 0


async def test_connection_slots_are_per_user_and_freed_on_release(limiter, settings):
    settings.REALTIME_MAX_CONNECTIONS_PER_USER = 2
    throttle, _ = limiter
    assert await throttle.acquire_slot(1, "a") == (True, 1)
    assert await throttle.acquire_slot(1, "b") == (True, 2)
    assert await throttle.acquire_slot(1, "c") == (False, 2)
    assert (await throttle.acquire_slot(2, "x"))[0]
    await throttle.release_slot(1, "a")
    assert await throttle.acquire_slot(1, "c") == (True, 2)


async def test_slots_of_a_dead_process_expire_with_their_lease(settings):
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    settings.REALTIME_MAX_CONNECTIONS_PER_USER = 1
    clock = Clock()
    dead = Throttle(url=require_redis_url(), clock=clock)
    assert (await dead.acquire_slot(1, "held-by-a-dead-process"))[0]
    other = Throttle(url=require_redis_url(), clock=clock)
    assert not (await other.acquire_slot(1, "new"))[0]
    clock.advance(settings.REALTIME_CONNECTION_LEASE_SECONDS + 1)
    assert (await other.acquire_slot(1, "new"))[0]


async def test_two_processes_share_one_budget(settings):
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    clock = Clock()
    a = Throttle(url=require_redis_url(), clock=clock)
    b = Throttle(url=require_redis_url(), clock=clock)
    accepted = [(await (a if i % 2 else b).message(1, "agent_status")).allowed for i in range(20)]
    assert sum(accepted) == 10


async def test_unreachable_redis_falls_back_to_this_process_logged_once(caplog, settings):
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    settings.REALTIME_THROTTLE_REDIS_TIMEOUT_SECONDS = 0.5
    before = REGISTRY.get_sample_value("tripsage_rate_limiter_fallbacks_total") or 0
    throttle = Throttle(url="redis://127.0.0.1:1/0", clock=Clock())
    throttle.RETRY_REDIS_SECONDS = 0  # try Redis on every check: each one falls back
    with caplog.at_level(logging.WARNING, logger="realtime.throttling"):
        decisions = [await throttle.message(1, "notifications") for _ in range(6)]
        assert (await throttle.acquire_slot(1, "a"))[0]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
    after = REGISTRY.get_sample_value("tripsage_rate_limiter_fallbacks_total")
    assert after - before == 7


async def test_while_redis_is_away_the_cap_counts_the_users_sockets_on_this_process(settings):
    """The fallback is a per-process cap over every socket of the user here, those leased in
    Redis before it went away included; a socket taken meanwhile is leased too, so that once
    Redis answers the renewer puts it there and the cap holds across processes again."""
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    settings.REALTIME_MAX_CONNECTIONS_PER_USER = 3
    settings.REALTIME_CONNECTION_LEASE_SECONDS = 0.3
    throttle = Throttle(url=require_redis_url(), clock=Clock())
    assert (await throttle.acquire_slot(7, "before-1"))[0]
    assert (await throttle.acquire_slot(7, "before-2"))[0]
    throttle.redis_down_until = float("inf")  # Redis away: every check stays in the process
    assert await throttle.acquire_slot(7, "during") == (True, 3)
    assert await throttle.acquire_slot(7, "one-too-many") == (False, 3)
    assert (await throttle.acquire_slot(8, "someone-else"))[0]  # per user, as always

    throttle.redis_down_until = 0.0  # Redis answers again; the renewer puts "during" back
    other = Throttle(url=require_redis_url(), clock=throttle.clock)
    for _ in range(50):
        if not (await other.acquire_slot(7, "elsewhere"))[0]:
            break
        await other.release_slot(7, "elsewhere")
        await asyncio.sleep(0.05)
    assert await other.acquire_slot(7, "elsewhere") == (False, 3)


def test_limits_come_from_the_environment(monkeypatch):
    defaults = {"chat": (120, 20, 60.0), "notifications": (30, 5, 60.0)}
    monkeypatch.setenv("REALTIME_RATE_LIMITS", "chat=600/100, notifications=10/2/30")
    assert env_rate_limits("REALTIME_RATE_LIMITS", defaults) == {
        "chat": (600, 100, 60.0),
        "notifications": (10, 2, 30.0),
    }
    for bad in ("chat=600", "teleport=1/1", "chat=a/b", "chat=0/5", "chat=5/5/-1"):
        monkeypatch.setenv("REALTIME_RATE_LIMITS", bad)
        with pytest.raises(ImproperlyConfigured):
            env_rate_limits("REALTIME_RATE_LIMITS", defaults)


async def test_a_live_process_renews_its_leases(settings):
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    settings.REALTIME_MAX_CONNECTIONS_PER_USER = 1
    settings.REALTIME_CONNECTION_LEASE_SECONDS = 0.3
    clock = Clock()
    holder = Throttle(url=require_redis_url(), clock=clock)
    other = Throttle(url=require_redis_url(), clock=clock)
    assert (await holder.acquire_slot(1, "held"))[0]
    clock.advance(0.25)
    await asyncio.sleep(0.25)  # the renewer runs every lease / 3 (real time)
    clock.advance(0.2)  # past the first lease, within the renewed one
    assert not (await other.acquire_slot(1, "new"))[0]
    await holder.release_slot(1, "held")
    assert (await other.acquire_slot(1, "new"))[0]
    holder.renewer.cancel()


async def test_checks_made_at_once_share_one_pipeline_and_each_gets_its_own_answer(settings):
    """A storm's checks go to Redis together (one EVALSHA pipeline), yet every check is taken
    on its own: 8 checks at once on a bucket of 5 admit exactly 5."""
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    throttle = Throttle(url=require_redis_url(), clock=Clock())
    batches: list[int] = []
    run = throttle._run_scripts

    async def counted(calls):
        batches.append(len(calls))
        return await run(calls)

    throttle._scripts.fetch_many = counted
    rate = Rate(60, 5)
    decisions = await asyncio.gather(
        *(throttle.take("storm", rate, batched=True) for _ in range(8))
    )
    assert sum(d.allowed for d in decisions) == 5
    assert batches == [8]


async def test_a_message_check_does_not_wait_for_a_storms_batch(settings):
    """A live message's check goes to Redis at once, while the connects' batch is still on its
    way (behind it, a member's edit waited several turns of a storm-busy loop: bench S7)."""
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    throttle = Throttle(url=require_redis_url(), clock=Clock())
    held = asyncio.Event()
    run = throttle._run_scripts

    async def slow(calls):
        await held.wait()
        return await run(calls)

    throttle._scripts.fetch_many = slow
    connects = asyncio.gather(*(throttle.connect(f"10.0.0.{i}") for i in range(20)))
    await asyncio.sleep(0)  # the connects' batch is in flight, held
    decision = await asyncio.wait_for(throttle.message(7, "trip_collaboration"), 5)
    assert decision.allowed
    assert not connects.done()
    held.set()
    assert all(d.allowed for d in await connects)


async def test_scripts_redis_lost_are_loaded_again(tmp_path, settings):
    """A restarted Redis (or a new primary) holds no scripts: the checks go on, exact."""
    settings.REALTIME_THROTTLE_PREFIX = f"test-throttle-{uuid.uuid4().hex[:8]}"
    server = RedisServer(tmp_path)
    try:
        throttle = Throttle(url=server.url, clock=Clock())
        rate = Rate(60, 3)
        assert (await throttle.take("k", rate)).allowed
        server.client().script_flush()
        decisions = [await throttle.take("k", rate) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert throttle._use_redis()  # no fallback: Redis answered throughout
    finally:
        server.stop()
