"""Revocation and operator disconnects survive a lost message: each process re-checks its
sockets' users and requested disconnects when its Redis subscription comes back, and
periodically (a frozen Redis is a fault nobody notices).

The test process deactivates the user (or requests the disconnect) itself, so its message goes
to the suite's Redis, which these processes do not hear: it is lost by construction, as it
would be with the processes' own Redis away. With Redis killed and back, the processes re-check
as they resubscribe; with Redis frozen and thawed, nothing reconnects, and the periodic
re-check closes the sockets."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from metrics import services as metrics_services
from metrics.models import ConnectionSession
from tests import factories
from tests.chaos.conftest import RedisServer, record, timing
from tests.wsclient import closed_with, connect, recv_type, send_json

pytestmark = pytest.mark.django_db(transaction=True)

token_for = sync_to_async(factories.access_token)


async def still_open(ws) -> None:
    await send_json(ws, {"type": "ping", "id": "still-there"})
    pong = await recv_type(ws, "pong")
    assert pong["request_id"] == "still-there"


@sync_to_async
def deactivate(user: User) -> None:
    user.is_active = False
    user.save()  # its revocation is published after commit, where these processes never hear it


@pytest.mark.parametrize("fault", ["killed", "frozen"])
async def test_a_user_deactivated_while_redis_is_away_loses_every_socket_on_every_process(
    redis: RedisServer, processes, crew, fault
):
    alice, bob, _, trip = crew
    a, b = processes
    path = f"/ws/trips/{trip.pk}/"
    bob_a, _ = await connect(a.ws_url, path, await token_for(bob))
    bob_b, _ = await connect(b.ws_url, "/ws/notifications/", await token_for(bob))
    alice_a, _ = await connect(a.ws_url, path, await token_for(alice))

    if fault == "killed":
        redis.kill()
        await deactivate(bob)
        redis.start()  # back, empty: the processes resubscribe and re-check
    else:
        redis.freeze()
        try:
            await deactivate(bob)
        finally:
            redis.thaw()  # nothing reconnects: the periodic re-check finds it
    back = time.monotonic()
    check = timing("REALTIME_REVOCATION_CHECK_SECONDS")
    for ws in (bob_a, bob_b):
        code, messages = await closed_with(ws, timeout=check + 5)
        assert code == 4001
        assert messages[-1]["error"]["details"]["reason"] == "user_inactive"
    record(f"Redis {fault} while a user is deactivated", "every socket of the user closed",
           time.monotonic() - back, check)  # fmt: skip
    await still_open(alice_a)


async def test_an_operator_disconnect_while_redis_is_away_closes_the_socket_once_it_is_back(
    redis: RedisServer, processes, crew
):
    alice, bob, _, trip = crew
    _, b = processes
    target, established = await connect(b.ws_url, f"/ws/trips/{trip.pk}/", await token_for(bob))
    other, _ = await connect(b.ws_url, f"/ws/trips/{trip.pk}/", await token_for(alice))
    cid = established["connection_id"]
    for _ in range(100):  # the operator sees it in the admin once its process has written it
        if await sync_to_async(ConnectionSession.objects.filter(connection_id=cid).exists)():
            break
        await asyncio.sleep(0.1)
    redis.kill()
    requested = await sync_to_async(metrics_services.request_disconnect)([cid])
    assert requested == 1
    redis.start()
    back = time.monotonic()
    check = timing("REALTIME_REVOCATION_CHECK_SECONDS")
    code, messages = await closed_with(target, timeout=check + 5)
    record("Redis killed during an operator's disconnect", "the socket closed",
           time.monotonic() - back, check)  # fmt: skip
    assert code == 4010
    assert messages[-1]["error"]["details"]["reason"] == "closed_by_operator"
    await still_open(other)
