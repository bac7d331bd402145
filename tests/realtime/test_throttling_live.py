"""Rate limits over the network: real daphne processes sharing Redis, real WebSocket clients."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient
from websockets.exceptions import ConnectionClosed

from tests import factories
from tests.conftest import require_redis_url
from tests.wsclient import closed_with, connect, open_socket, recv_type, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)

# 60 per minute (one per second) with a burst of 5; closed after 60 refusals in a window.
# auth.refresh: 60 per minute with a burst of 3.
LIMITED = {
    "REALTIME_RATE_LIMITS": "trip_collaboration=60/5",
    "REALTIME_REFRESH_PER_MINUTE": "60",
    "REALTIME_REFRESH_BURST": "3",
    "REALTIME_FLOOD_FACTOR": "1",
    "REALTIME_MAX_CONNECTIONS_PER_USER": "2",
}


@pytest.fixture(scope="module")
def limited_pair(module_daphne_factory):
    return module_daphne_factory("limited-a", **LIMITED), module_daphne_factory(
        "limited-b", **LIMITED
    )


@pytest.fixture(autouse=True)
def fresh_budgets(settings):
    """Test users' ids repeat between tests (SQLite): start every test with full budgets."""
    client = redis.Redis.from_url(require_redis_url())
    keys = list(client.scan_iter(f"{settings.REALTIME_THROTTLE_PREFIX}:rl:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def crew(transactional_db):
    alice, bob, carol, trip = factories.make_crew()
    return alice, bob, carol, f"/ws/trips/{trip.pk}/"


async def echo(ws, n: int) -> None:
    await send_json(ws, {"type": "echo", "id": f"e-{n}", "data": n})


def is_answer(n: int):
    return lambda m: m.get("request_id") == f"e-{n}" and m["type"] in ("echo", "error")


async def test_over_the_limit_is_refused_and_the_socket_stays_open(limited_pair, crew):
    a, _ = limited_pair
    alice, *_, path = crew
    ws, established = await connect(a.ws_url, path, factories.access_token(alice))
    assert established["limits"]["messages_per_minute"] == 60
    assert established["limits"]["message_burst"] == 5
    status = ws.rate_limit
    assert status["limit"] == 60 and status["window_seconds"] == 60
    assert status["burst_remaining"] == 5 and status["burst"] == 5

    answers = []
    for n in range(6):
        await echo(ws, n)
        answers.append(await recv_until(ws, is_answer(n)))
    assert [m["type"] for m in answers] == ["echo"] * 5 + ["error"]
    refused = answers[5]
    assert refused["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    details = refused["error"]["details"]
    assert details["limit"] == 60 and details["remaining"] == 0
    assert details["window_seconds"] == 60 and 0 < details["retry_after"] <= 1
    assert details["limit_type"] == "message"

    # Heartbeats do not count, and the socket is still open.
    for n in range(10):
        await send_json(ws, {"type": "ping", "id": f"p-{n}"})
        pong = await recv_type(ws, "pong")
        assert pong["request_id"] == f"p-{n}"
    # The budget refills at one per second: the client may send again.
    await asyncio.sleep(details["retry_after"])
    await echo(ws, 99)
    assert (await recv_until(ws, is_answer(99)))["type"] == "echo"
    await ws.close()


async def test_a_status_goes_out_when_the_budget_runs_low_and_on_request(limited_pair, crew):
    a, _ = limited_pair
    _, bob, _, path = crew
    ws, _ = await connect(a.ws_url, path, factories.access_token(bob))
    opening = ws.rate_limit
    assert opening["current_usage"] == 0 and opening["remaining"] == 60
    for n in range(3):
        await echo(ws, n)
        await recv_until(ws, is_answer(n))
    await send_json(ws, {"type": "rate_limit_status", "id": "s-1"})  # counts: the fourth
    asked = await recv_until(ws, lambda m: m.get("request_id") == "s-1")
    assert asked["type"] == "rate_limit_status"
    # The seed's meaning: four of this minute's 60 used, 56 remaining (fewer used if the minute
    # turned meanwhile: reset_at says which); the bucket (burst 5) has one left.
    same_minute = asked["reset_at"] == opening["reset_at"]
    assert asked["limit"] == 60 and asked["current_usage"] + asked["remaining"] == 60
    assert asked["current_usage"] == 4 if same_minute else 1 <= asked["current_usage"] < 4
    assert asked["burst_remaining"] == 1
    assert set(asked) >= {"current_usage", "limit", "remaining", "reset_at", "window_seconds"}
    # The fifth leaves nothing: under 20 % of the burst, the server says so unasked, once.
    await echo(ws, 4)
    low = await recv_type(ws, "rate_limit_status")
    assert low["burst_remaining"] == 0 and "request_id" not in low
    assert low["current_usage"] + low["remaining"] == 60
    if low["reset_at"] == opening["reset_at"]:
        assert low["current_usage"] == 5
    await ws.close()


async def test_one_budget_across_sockets_and_processes(limited_pair, crew):
    a, b = limited_pair
    alice, bob, _, path = crew
    on_a, _ = await connect(a.ws_url, path, factories.access_token(alice))
    on_b, _ = await connect(b.ws_url, path, factories.access_token(alice))
    other, _ = await connect(a.ws_url, path, factories.access_token(bob))
    started = time.monotonic()
    results = []
    for n in range(20):
        ws = on_a if n % 2 else on_b
        await echo(ws, n)
        results.append((await recv_until(ws, is_answer(n)))["type"])
    elapsed = time.monotonic() - started
    accepted = results.count("echo")
    # The burst of 5 plus what refilled meanwhile (one per second), not 5 per socket.
    assert 5 <= accepted <= 5 + int(elapsed) + 1, (accepted, elapsed)
    assert results[:5] == ["echo"] * 5
    # Another user's messages keep flowing.
    for n in range(100, 103):
        await echo(other, n)
        assert (await recv_until(other, is_answer(n)))["type"] == "echo"
    for ws in (on_a, on_b, other):
        await ws.close()


async def test_a_flood_at_ten_times_the_limit_is_closed_and_others_are_served(limited_pair, crew):
    a, _ = limited_pair
    alice, bob, _, path = crew
    flooder, _ = await connect(a.ws_url, path, factories.access_token(alice))
    other, _ = await connect(a.ws_url, path, factories.access_token(bob))

    async def flood() -> None:  # 10 per second against a limit of 1 per second
        n = 0
        while True:
            await echo(flooder, n)
            n += 1
            await asyncio.sleep(0.1)

    flooding = asyncio.create_task(flood())
    try:
        # While the flood runs, the other client (within its own budget) is always answered.
        for n in range(1000, 1008):
            await echo(other, n)
            assert (await recv_until(other, is_answer(n)))["type"] == "echo"
            await asyncio.sleep(0.6)
        code, messages = await closed_with(flooder, timeout=30)
    finally:
        flooding.cancel()
    assert code == 4029
    last = messages[-1]
    assert last["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert last["error"]["details"]["reason"] == "flood"
    refusals = [m for m in messages if m["type"] == "error"]
    assert len(refusals) > 60  # refused 60 times within the window first
    await echo(other, 2000)
    assert (await recv_until(other, is_answer(2000)))["type"] == "echo"
    await other.close()


async def refresh(ws, n: int, token: str) -> dict:
    await send_json(ws, {"type": "auth.refresh", "id": f"r-{n}", "token": token})
    return await recv_until(ws, lambda m: m.get("request_id") == f"r-{n}")


async def test_refreshes_have_a_small_bucket_of_their_own(limited_pair, crew):
    a, _ = limited_pair
    alice, bob, _, path = crew
    ws, _ = await connect(a.ws_url, path, factories.access_token(alice))
    assert ws.rate_limit["auth_refresh"]["limit"] == 60
    assert ws.rate_limit["auth_refresh"]["burst"] == 3
    assert ws.rate_limit["auth_refresh"]["remaining"] == 3
    assert ws.rate_limit["auth_refresh"]["window_seconds"] == 60

    answers = [(await refresh(ws, n, factories.access_token(alice)))["type"] for n in range(3)]
    assert answers == ["auth.refreshed"] * 3
    refused = await refresh(ws, 3, factories.access_token(alice))
    assert refused["type"] == "error" and refused["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    details = refused["error"]["details"]
    assert details["limit_type"] == "auth.refresh"
    assert details["limit"] == 60 and details["remaining"] == 0 and details["burst"] == 3
    assert details["window_seconds"] == 60 and 0 < details["retry_after"] <= 1
    # A refused refresh is not looked at: another user's token (which would close the socket)
    # and a forged one are refused the same way, and the socket stays open.
    for n, token in ((4, factories.access_token(bob)), (5, "not-a-token")):
        answer = await refresh(ws, n, token)
        assert answer["error"]["code"] == "RATE_LIMIT_EXCEEDED", answer
    await send_json(ws, {"type": "ping", "id": "p-1"})
    assert (await recv_until(ws, lambda m: m.get("request_id") == "p-1"))["type"] == "pong"
    # The message budget is untouched (the status request is its only message); the refresh
    # bucket is empty.
    await send_json(ws, {"type": "rate_limit_status", "id": "s-1"})
    status = await recv_until(ws, lambda m: m.get("request_id") == "s-1")
    assert status["burst_remaining"] == 4
    assert status["auth_refresh"]["remaining"] == 0

    await asyncio.sleep(details["retry_after"])
    assert (await refresh(ws, 6, factories.access_token(alice)))["type"] == "auth.refreshed"
    await ws.close()


async def test_a_refresh_flood_is_closed(limited_pair, crew):
    a, _ = limited_pair
    alice, bob, _, path = crew
    flooder, _ = await connect(a.ws_url, path, factories.access_token(alice))
    other, _ = await connect(a.ws_url, path, factories.access_token(bob))
    token = factories.access_token(alice)
    for n in range(1000):
        try:
            await send_json(flooder, {"type": "auth.refresh", "id": f"r-{n}", "token": token})
        except ConnectionClosed:  # closed under the flood
            break
    code, messages = await closed_with(flooder, timeout=30)
    assert code == 4029
    last = messages[-1]["error"]
    assert last["code"] == "RATE_LIMIT_EXCEEDED" and last["details"]["reason"] == "flood"
    assert last["details"]["limit_type"] == "auth.refresh"
    accepted = [m for m in messages if m["type"] == "auth.refreshed"]
    assert 3 <= len(accepted) < 20, len(accepted)  # the burst and what refilled, not 1,000
    # Another user's refreshes are served.
    assert (await refresh(other, 0, factories.access_token(bob)))["type"] == "auth.refreshed"
    await other.close()


async def test_concurrent_sockets_per_user_are_limited_across_processes(limited_pair, crew):
    a, b = limited_pair
    alice, *_, path = crew
    token = factories.access_token(alice)
    first, _ = await connect(a.ws_url, path, token)
    second, _ = await connect(b.ws_url, path, token)
    third = await open_socket(a.ws_url, path)
    await send_json(third, {"token": token, "id": "auth-3"})
    code, messages = await closed_with(third)
    assert code == 4029
    error = messages[-1]["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["details"] == {"reason": "too_many_connections", "limit": 2, "current": 2}
    assert messages[-1]["request_id"] == "auth-3"

    await first.close()
    # The slot is released when the server sees the close.
    deadline = time.monotonic() + 10
    while True:
        ws = await open_socket(a.ws_url, path)
        await send_json(ws, {"token": token})
        reply = await recv_until(ws, lambda m: m["type"] in ("connection.established", "error"))
        if reply["type"] == "connection.established":
            break
        assert time.monotonic() < deadline, "a closed socket's slot was never released"
        await asyncio.sleep(0.1)
    await ws.close()
    await second.close()


async def test_new_connections_per_address_are_limited_before_authentication(daphne_factory, crew):
    server = daphne_factory(
        "per-ip",
        REALTIME_CONNECTS_PER_MINUTE_PER_IP="3",
        CHANNEL_LAYER_PREFIX=f"test-ip-{uuid.uuid4().hex[:8]}",  # a fresh address budget
    )
    alice, *_, path = crew
    token = factories.access_token(alice)
    for _ in range(3):
        ws, _ = await connect(server.ws_url, path, token)
        await ws.close()
    refused = await open_socket(server.ws_url, path)  # no token sent: refused before auth
    code, messages = await closed_with(refused)
    assert code == 4029
    error = messages[-1]["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["details"]["reason"] == "connect_rate"
    assert error["details"]["limit"] == 3 and error["details"]["retry_after"] > 0


async def test_without_redis_the_limiter_holds_in_process_and_closes_nothing(daphne_factory, crew):
    server = daphne_factory(
        "throttle-no-redis",
        REALTIME_THROTTLE_REDIS_URL="redis://127.0.0.1:1/0",
        REALTIME_RATE_LIMITS="trip_collaboration=60/5",
    )
    alice, *_, path = crew
    ws, _ = await connect(server.ws_url, path, factories.access_token(alice))
    results = []
    for n in range(7):
        await echo(ws, n)
        results.append((await recv_until(ws, is_answer(n)))["type"])
    assert results == ["echo"] * 5 + ["error"] * 2
    await send_json(ws, {"type": "ping"})
    await recv_type(ws, "pong")
    await ws.close()
    log = server.log()
    assert log.count("rate limiter: Redis unreachable") == 1


def test_rest_throttles_per_user_with_the_seed_envelope(crew):
    alice, *_ = crew
    cache.delete_many([f"throttle_user_{alice.pk}", "throttle_ip_127.0.0.1"])
    client = APIClient()
    client.force_authenticate(alice)
    with override_settings(REST_RATE_USER="3/min"):
        codes = [client.get("/api/trips/").status_code for _ in range(4)]
        refused = client.get("/api/trips/")
    assert codes == [200, 200, 200, 429]
    body = refused.json()
    assert body["type"] == "error" and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    details = body["error"]["details"]
    assert details["limit"] == 3 and details["remaining"] == 0
    assert details["window_seconds"] == 60 and details["retry_after"] >= 1
    assert int(refused["Retry-After"]) >= 1


def test_rest_throttles_per_address_whoever_signs_in(crew):
    alice, bob, *_ = crew
    cache.delete_many(
        [f"throttle_user_{alice.pk}", f"throttle_user_{bob.pk}", "throttle_ip_127.0.0.1"]
    )
    with override_settings(REST_RATE_IP="3/min"):
        statuses = []
        for user in (alice, bob, alice, bob):
            client = APIClient()
            client.force_authenticate(user)
            statuses.append(client.get("/api/trips/").status_code)
    assert statuses == [200, 200, 200, 429]
    cache.delete("throttle_ip_127.0.0.1")


async def test_a_user_refused_at_connect_holds_no_slot(limited_pair, crew):
    """The slot is taken while the user is read (one round trip for both): a user who may not
    connect (disabled) gives it back at once, or the limit of 2 would refuse the third socket
    below."""
    a, _ = limited_pair
    alice, *_, path = crew
    token = factories.access_token(alice)
    alice.is_active = False
    await sync_to_async(alice.save)(update_fields=["is_active"])
    for _ in range(3):
        refused = await open_socket(a.ws_url, path)
        await send_json(refused, {"token": token, "id": "auth-x"})
        code, messages = await closed_with(refused)
        assert code == 4001
        assert messages[-1]["error"]["details"]["reason"] == "user_inactive"
    alice.is_active = True
    await sync_to_async(alice.save)(update_fields=["is_active"])
    sockets = [(await connect(a.ws_url, path, token))[0] for _ in range(2)]
    for ws in sockets:
        await ws.close()
