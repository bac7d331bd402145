"""Sign-in limits under parallel guessing (realtime/rest.py, ASVS 6.3.1): guesses sent at the same
instant, to one daphne process or spread over two, spend one SIGN_IN_RATE budget in Redis. Each
check is one atomic step (a Lua script), so no guess slips through while another one's count is
on its way."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = 5
GUESSES = 30


def limited_env() -> dict[str, str]:
    """A small budget, counted under a prefix no other test (nor an earlier run) used."""
    return {
        "SIGN_IN_RATE": f"{BUDGET}/min",
        "CHANNEL_LAYER_PREFIX": f"test-sign-in-{uuid.uuid4().hex[:8]}",
    }


def guess(url: str, barrier: threading.Barrier) -> int:
    """A wrong password at the token endpoint, sent when every other guess is ready too."""
    body = json.dumps({"username": "alice", "password": "not-her-password"}).encode()
    request = urllib.request.Request(
        f"{url}/api/auth/token/",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    barrier.wait(timeout=30)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def guess_at_once(urls: list[str]) -> list[int]:
    """One guess per entry of `urls`, all leaving together (a barrier): the status codes."""
    barrier = threading.Barrier(len(urls))
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(lambda url: guess(url, barrier), urls))


def test_simultaneous_guesses_on_one_process_spend_one_budget(daphne_factory):
    factories.make_user("alice")
    server = daphne_factory("sign-in-race", **limited_env())
    answers = guess_at_once([server.http_url] * GUESSES)
    answered = [code for code in answers if code != 429]
    # Every attempt counts and none slips through: exactly the budget is answered.
    assert len(answered) == BUDGET, f"{len(answered)} of {GUESSES} got past the 429: {answers}"
    assert set(answered) == {401}


def test_simultaneous_guesses_on_two_processes_spend_one_shared_budget(daphne_factory):
    factories.make_user("alice")
    env = limited_env()  # one prefix: both processes count into the same Redis keys
    a = daphne_factory("sign-in-race-a", **env)
    b = daphne_factory("sign-in-race-b", **env)
    answers = guess_at_once([a.http_url, b.http_url] * (GUESSES // 2))
    answered = [code for code in answers if code != 429]
    assert len(answered) == BUDGET, f"{len(answered)} of {GUESSES} got past the 429: {answers}"
    assert set(answered) == {401}
