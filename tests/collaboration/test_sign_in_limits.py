"""Sign-in limits (realtime/sign_in_limits.py, ASVS 6.3.1 and 6.3.4): password guesses from one
address on the page's sign-in, the admin's login, the browsable API's login and the token endpoint
draw from one per-address budget (SIGN_IN_RATE, counted in the cache the REST throttles use);
over it they are refused with 429 before any password is checked."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from django.contrib.auth.hashers import get_hasher
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.test import Client, override_settings
from rest_framework.test import APIClient

from events import security
from tests import factories
from tests.conftest import require_redis_url

pytestmark = pytest.mark.django_db

BUDGET = 3
FORMS = ["/trips/sign-in/", "/admin/login/", "/api-auth/login/"]
_addresses = count(1)


@pytest.fixture(autouse=True)
def small_budget() -> Iterator[None]:
    with override_settings(SIGN_IN_RATE=f"{BUDGET}/min"):
        yield


def fresh_address() -> str:
    """An address no other test (nor an earlier run within the minute) has counted."""
    address = f"198.51.100.{next(_addresses)}"
    cache.delete(f"throttle_sign_in_{address}")
    return address


@pytest.fixture
def address() -> str:
    return fresh_address()


@pytest.fixture
def hasher_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a password was hashed (checked), as tests/test_rest_auth.py counts."""
    hasher = type(get_hasher())
    runs: list[int] = []
    encode = hasher.encode
    monkeypatch.setattr(
        hasher, "encode", lambda self, *a, **k: runs.append(1) or encode(self, *a, **k)
    )
    return runs


def guess(client: Client, path: str, password: str = "not-the-password", **extra: Any) -> Any:
    if path == "/api/auth/token/":
        body = {"username": "alice", "password": password}
        return client.post(path, body, content_type="application/json", **extra)
    return client.post(path, {"username": "alice", "password": password}, **extra)


@pytest.mark.parametrize("path", FORMS)
def test_guesses_past_the_budget_are_refused_with_429_and_no_password_checked(
    path, address, hasher_runs
):
    factories.make_user("alice", is_staff=True)
    hasher_runs.clear()
    client = Client(REMOTE_ADDR=address)
    answers = [guess(client, path).status_code for _ in range(BUDGET)]
    assert answers == [200] * BUDGET  # the form again, with "wrong password"
    assert len(hasher_runs) == BUDGET
    hasher_runs.clear()
    refused = guess(client, path)
    assert refused.status_code == 429
    assert "Too many sign-in attempts" in refused.content.decode()
    assert "try again" in refused.content.decode()
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert hasher_runs == []  # refused before the password is looked at
    # The right password is refused too: the budget is spent.
    right = guess(client, path, factories.PASSWORD)
    assert right.status_code == 429 and hasher_runs == []
    assert "_auth_user_id" not in client.session
    # Asking for the form is never limited.
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", FORMS)
def test_other_addresses_are_unaffected(path, address):
    factories.make_user("alice", is_staff=True)
    for _ in range(BUDGET + 1):
        guess(Client(REMOTE_ADDR=address), path)
    other = Client(REMOTE_ADDR=fresh_address())
    assert guess(other, path).status_code == 200  # refused for its password, not its address
    assert guess(other, path, factories.PASSWORD).status_code == 302  # signed in
    assert "_auth_user_id" in other.session


def test_a_clients_own_x_forwarded_for_does_not_buy_more_guesses(address):
    """The budget is counted by REMOTE_ADDR alone, which tripsage.proxies set from a trusted
    proxy's word only; a client's own X-Forwarded-For is never read."""
    factories.make_user("alice")
    client = Client(REMOTE_ADDR=address)
    answers = [
        guess(client, "/trips/sign-in/", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(BUDGET + 2)
    ]
    assert answers == [200] * BUDGET + [429, 429]


def test_the_page_the_admin_and_the_token_endpoint_share_one_budget(address, hasher_runs):
    """Equally strong (ASVS 6.3.4): a guess on any pathway spends the same budget, so moving
    from one to another buys nothing."""
    factories.make_user("alice", is_staff=True)
    client = Client(REMOTE_ADDR=address)
    answers = [
        guess(client, path).status_code
        for path in ("/trips/sign-in/", "/api/auth/token/", "/admin/login/")
    ]
    assert answers == [200, 401, 200]
    hasher_runs.clear()
    token = guess(client, "/api/auth/token/", factories.PASSWORD)
    assert token.status_code == 429
    error = token.json()["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["details"]["scope"] == "sign_in" and error["details"]["limit"] == BUDGET
    assert int(token["Retry-After"]) == error["details"]["retry_after"] >= 1
    for path in FORMS:
        assert guess(client, path, factories.PASSWORD).status_code == 429
    assert hasher_runs == []


def test_without_the_shared_cache_sign_ins_are_still_limited_in_process(
    address, monkeypatch, caplog
):
    """Redis away: the budget holds per process instead of letting every guess through."""

    class Unanswering:
        def __getattr__(self, name: str) -> Any:
            raise ConnectionError("the cache does not answer")

    from realtime.rest import SignInThrottle  # not at import: DRF's settings load realtime.rest

    monkeypatch.setattr(SignInThrottle, "cache", Unanswering())
    factories.make_user("alice")
    client = Client(REMOTE_ADDR=address)
    with caplog.at_level(logging.ERROR, logger="realtime.rest"):
        answers = [guess(client, "/trips/sign-in/").status_code for _ in range(BUDGET + 1)]
    assert answers == [200] * BUDGET + [429]


def test_a_refused_sign_in_is_in_the_security_log(address):
    factories.make_user("alice")
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(dict(record.security))  # type: ignore[attr-defined]

    handler = Collect(level=logging.INFO)
    logger = logging.getLogger(security.LOGGER_NAME)
    logger.addHandler(handler)
    try:
        client = Client(REMOTE_ADDR=address)
        for path in ["/trips/sign-in/"] * BUDGET + ["/trips/sign-in/", "/api/auth/token/"]:
            guess(client, path, HTTP_X_FORWARDED_FOR="203.0.113.9")
    finally:
        logger.removeHandler(handler)
    failed = [line for line in lines if line["event"] == "auth.login_failed"]
    assert [line["reason"] for line in failed] == ["invalid_credentials"] * BUDGET + [
        "rate_limited"
    ] * 2
    assert failed[-2] == {
        "event": "auth.login_failed",
        "outcome": "failure",
        "remote_addr": address,
        "username": "alice",
        "reason": "rate_limited",
        "method": "session",
    }
    assert failed[-1]["method"] == "token" and failed[-1]["remote_addr"] == address
    assert "not-the-password" not in repr(lines)


@pytest.fixture
def redis_cache() -> Any:
    """The configured cache, which the suite runs on Redis (the shared budget's cache)."""
    require_redis_url()
    assert isinstance(cache._cache, RedisCacheClient), "the suite's CACHES is RedisCache"
    return cache


def test_the_budget_is_one_sorted_set_in_redis_that_expires(address, redis_cache):
    """The atomic check's log: one attempt per member, under the key DRF's throttle used."""
    factories.make_user("alice")
    client = Client(REMOTE_ADDR=address)
    for _ in range(BUDGET + 2):
        guess(client, "/api/auth/token/")
    key = cache.make_and_validate_key(f"throttle_sign_in_{address}")
    raw = redis_cache._cache.get_client(key)
    assert raw.type(key) == b"zset"
    assert raw.zcard(key) == BUDGET  # refused attempts are not logged (as in DRF)
    assert 0 < raw.pttl(key) <= 60_000


def test_the_window_slides_in_redis(address, redis_cache, monkeypatch):
    """An attempt leaves the budget a window after it was made, not at a fixed minute's turn."""
    from realtime.rest import SignInThrottle

    now = [1_000_000.0]
    monkeypatch.setattr(SignInThrottle, "timer", lambda self: now[0])
    factories.make_user("alice")
    client = Client(REMOTE_ADDR=address)
    codes = []
    for _ in range(BUDGET):
        now[0] += 10
        codes.append(guess(client, "/api/auth/token/").status_code)
    refused = guess(client, "/api/auth/token/")
    # The oldest attempt (at +10 s) leaves the window at +70 s: 40 s from now (+30 s, BUDGET 3).
    assert codes == [401] * BUDGET and refused.status_code == 429
    assert refused.json()["error"]["details"]["retry_after"] == 40 == int(refused["Retry-After"])
    now[0] += 39
    assert guess(client, "/api/auth/token/").status_code == 429
    now[0] += 1.5
    assert guess(client, "/api/auth/token/").status_code == 401


def test_a_budget_left_by_drfs_throttle_is_replaced_not_an_error(address, redis_cache):
    """A rolling upgrade: a process of the release before kept a pickled list under the key."""
    cache.set(f"throttle_sign_in_{address}", [1.0, 2.0], 60)
    factories.make_user("alice")
    client = Client(REMOTE_ADDR=address)
    answers = [guess(client, "/trips/sign-in/").status_code for _ in range(BUDGET + 1)]
    assert answers == [200] * BUDGET + [429]


def test_with_redis_refusing_connections_sign_ins_are_limited_in_process_and_other_requests_served(
    address, monkeypatch, caplog
):
    """A real RedisCache whose Redis is away (nothing listens on port 1): sign-ins are counted in
    this process, every other request is served, each fallback is counted."""
    from metrics import instruments
    from realtime.rest import SignInThrottle, _Throttle

    away = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 1.0}})
    monkeypatch.setattr(_Throttle, "cache", away)
    monkeypatch.setattr(SignInThrottle, "cache", away)
    monkeypatch.setattr(_Throttle, "cache_error_logged", False)
    SignInThrottle.fallback_cache.clear()
    fallbacks = instruments.RATE_LIMITER_FALLBACKS._value.get()
    alice = factories.make_user("alice")
    client = Client(REMOTE_ADDR=address)
    with caplog.at_level(logging.ERROR, logger="realtime.rest"):
        answers = [guess(client, "/api/auth/token/").status_code for _ in range(BUDGET + 1)]
        api = APIClient(REMOTE_ADDR=address)
        api.force_authenticate(alice)
        with override_settings(REST_RATE_USER="1/min", REST_RATE_IP="1/min"):
            served = [api.get("/api/trips/").status_code for _ in range(3)]
    assert answers == [401] * BUDGET + [429]
    assert served == [200] * 3  # the REST throttles let requests through
    assert instruments.RATE_LIMITER_FALLBACKS._value.get() > fallbacks
    skipped = [r for r in caplog.records if "throttling skipped" in r.getMessage()]
    assert len(skipped) == 1
