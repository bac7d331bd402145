"""A spoofed X-Forwarded-For changes nothing: a client that sends its own, straight to a process
or through the proxy, is held to the per-address connect limit and the REST throttle of the
address it really connects from (tripsage/proxies.py, TRUSTED_PROXIES)."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from deploy.cluster import Cluster
from tests import factories
from tests.conftest import LIFTED_RATE_LIMITS
from tests.deploy.conftest import CLUSTER_ENV
from tests.wsclient import recv_json, send_json

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 5  # new sockets per minute per address, and REST requests per minute per address


@pytest.fixture(scope="module")
def guarded(start_cluster: Callable[..., Cluster]) -> Cluster:
    """Two processes behind nginx with small per-address limits (no Sentinels needed)."""
    env = {
        **CLUSTER_ENV,
        "REALTIME_CONNECTS_PER_MINUTE_PER_IP": str(LIMIT),
        "REALTIME_RATE_LIMITS": LIFTED_RATE_LIMITS,
        "REST_RATE_IP": f"{LIMIT}/min",
    }
    return start_cluster("guarded", processes=2, sentinels=0, replica=False, env=env)


@pytest.fixture
def fresh(guarded: Cluster) -> Cluster:
    """The guarded cluster with every limit's budget full again (its own Redis: wiped)."""
    guarded.redis_primary.client().flushall()
    return guarded


def spoofed() -> dict[str, str]:
    """A new address each time, in every header a proxy might have used."""
    address = ".".join(str(random.randint(1, 254)) for _ in range(4))
    return {
        "X-Forwarded-For": address,
        "X-Real-IP": address,
        "Forwarded": f"for={address};proto=https",
        "X-Forwarded-Proto": "https",
    }


async def connect_outcome(base_url: str, path: str, token: str, headers: dict[str, str]) -> Any:
    """ "established", or the close code the server ended the socket with."""
    ws = await websockets.connect(f"{base_url}{path}", additional_headers=headers,
                                  open_timeout=10, max_queue=None)  # fmt: skip
    try:
        await send_json(ws, {"token": token, "id": "auth"})
        while True:
            message = await recv_json(ws)
            if message["type"] == "connection.established":
                return "established"
    except ConnectionClosed:
        return ws.close_code
    finally:
        await ws.close()


def token_guess(base_url: str, headers: dict[str, str]) -> int:
    """A wrong password at /api/auth/token/: the status code the client gets."""
    body = json.dumps({"username": "alice", "password": "not-her-password"}).encode()
    request = urllib.request.Request(
        f"{base_url}/api/auth/token/", data=body, method="POST",
        headers={"Content-Type": "application/json", **headers},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def token(transactional_db: None) -> str:
    return factories.access_token(factories.make_user("alice"))


REFUSED = [*["established"] * LIMIT, 4029, 4029, 4029]


async def test_spoofed_x_forwarded_for_straight_to_the_processes_is_held_to_the_connect_limit(
    fresh: Cluster, token: str
):
    outcomes = []
    for n in range(LIMIT + 3):
        process = fresh.processes[n % 2]  # both processes count into one budget
        outcomes.append(
            await connect_outcome(process.ws_url, "/ws/notifications/", token, spoofed())
        )
    assert outcomes == REFUSED


async def test_spoofed_x_forwarded_for_through_the_proxy_is_held_to_the_connect_limit(
    fresh: Cluster, token: str
):
    outcomes = [
        await connect_outcome(fresh.ws_url, "/ws/notifications/", token, spoofed())
        for _ in range(LIMIT + 3)
    ]
    assert outcomes == REFUSED


async def test_through_the_proxy_the_client_counts_as_its_own_address_not_the_proxys(
    fresh: Cluster, token: str
):
    # From 127.0.0.1 straight to a process, then through nginx (which connects from
    # 127.0.0.2 and vouches for 127.0.0.1): one budget, so the proxy's word was taken.
    outcomes = []
    for n in range(LIMIT + 3):
        base = fresh.processes[0].ws_url if n % 2 else fresh.ws_url
        outcomes.append(await connect_outcome(base, "/ws/notifications/", token, {}))
    assert outcomes == REFUSED


@pytest.mark.parametrize("where", ["process", "proxy"])
def test_password_guesses_with_spoofed_x_forwarded_for_get_429_at_the_rest_limit(
    fresh: Cluster, transactional_db: None, where: str
):
    factories.make_user("alice")
    base = fresh.processes[0].url if where == "process" else fresh.url
    statuses = [token_guess(base, spoofed()) for _ in range(LIMIT + 3)]
    assert statuses == [401] * LIMIT + [429] * 3
