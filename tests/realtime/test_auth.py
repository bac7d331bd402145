"""The auth middleware over the network: a real daphne process and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from websockets.exceptions import InvalidStatus

from realtime.auth import JWTAuthMiddleware, OriginRefusalLog
from realtime.connect_gate import ConnectGate
from realtime.throttling import throttle
from tests import factories
from tests.wsclient import closed_with, connect, open_socket, recv_json, recv_type, send_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_trip(live):
    alice = factories.make_user("alice")
    trip = factories.make_trip(alice)
    return alice, trip


async def _refused(server, trip, first_message):
    ws = await open_socket(server.ws_url, f"/ws/trips/{trip.pk}/")
    await ws.send(first_message if isinstance(first_message, str) else json.dumps(first_message))
    code, messages = await closed_with(ws)
    assert len(messages) == 1, messages
    return code, messages[0]


def _assert_seed_envelope(message, reason, request_id=None):
    assert set(message) == {"id", "type", "error", "timestamp", "request_id"}
    assert message["type"] == "error"
    assert message["request_id"] == request_id
    assert set(message["error"]) == {"code", "message", "details"}
    assert message["error"]["code"] == "AUTHENTICATION_FAILED"
    assert message["error"]["details"]["token_type"] == "jwt"
    assert message["error"]["details"]["reason"] == reason
    assert "expires_at" in message["error"]["details"]


async def test_valid_token_in_first_message_is_answered_with_connection_established(
    live, alice_trip
):
    alice, trip = alice_trip
    token = await sync_to_async(factories.access_token)(alice)
    ws, established = await connect(live.ws_url, f"/ws/trips/{trip.pk}/", token, request_id="a-1")
    assert established["request_id"] == "a-1"
    assert established["user"] == {"id": alice.pk, "username": "alice"}
    assert established["connection_type"] == "trip_collaboration"
    assert established["heartbeat_interval"] == 30
    assert established["limits"]["max_message_bytes"] == 65536
    assert established["connection_id"] and established["id"] and established["timestamp"]
    await ws.close()


async def test_typed_auth_message_is_accepted_too(live, alice_trip):
    alice, trip = alice_trip
    token = await sync_to_async(factories.access_token)(alice)
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/")
    await send_json(ws, {"type": "auth", "token": token})
    assert (await recv_json(ws))["type"] == "connection.established"
    await ws.close()


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda user: "not-a-jwt", "malformed"),
        (lambda user: factories.signed(factories.claims_for(user, exp=1_600_000_000)), "expired"),
        (
            lambda user: factories.signed(
                factories.claims_for(user), key=factories.foreign_private_pem()
            ),
            "invalid_signature",
        ),
        (
            lambda user: factories.unsigned_none_token(factories.claims_for(user)),
            "invalid_algorithm",
        ),
        (lambda user: factories.hs_confused_token(factories.claims_for(user)), "invalid_algorithm"),
        (lambda user: factories.refresh_token(user), "wrong_token_type"),
        (lambda user: factories.signed(factories.claims_for(user, exp=None)), "missing_claim"),
        (
            lambda user: factories.signed(factories.claims_for(user, user_id="999999")),
            "user_not_found",
        ),
    ],
    ids=[
        "malformed",
        "expired",
        "wrong-signature",
        "alg-none",
        "hs-rs-confusion",
        "refresh-as-access",
        "no-exp",
        "unknown-user",
    ],
)
async def test_bad_token_gets_seed_envelope_and_close_4001(live, alice_trip, make_token, reason):
    alice, trip = alice_trip
    token = await sync_to_async(make_token)(alice)
    code, message = await _refused(live, trip, {"token": token, "id": "auth-7"})
    assert code == 4001
    _assert_seed_envelope(message, reason, request_id="auth-7")


async def test_expired_token_reports_when_it_expired(live, alice_trip):
    alice, trip = alice_trip
    token = factories.signed(factories.claims_for(alice, exp=1_600_000_000))
    _, message = await _refused(live, trip, {"token": token})
    assert message["error"]["details"]["expires_at"] == "2020-09-13T12:26:40Z"
    assert message["error"]["message"] == "Invalid or expired token"


@pytest.mark.parametrize(
    "first", [{}, {"token": ""}, {"type": "auth"}], ids=["empty", "blank", "typed"]
)
async def test_missing_token_is_refused(live, alice_trip, first):
    _, trip = alice_trip
    code, message = await _refused(live, trip, first)
    assert code == 4001
    _assert_seed_envelope(message, "missing")


async def test_inactive_user_is_refused(live):
    owner = await sync_to_async(factories.make_user)("owner")
    trip = await sync_to_async(factories.make_trip)(owner)
    token = await sync_to_async(factories.access_token)(owner)
    owner.is_active = False
    await sync_to_async(owner.save)()
    code, message = await _refused(live, trip, {"token": token})
    assert code == 4001
    _assert_seed_envelope(message, "user_inactive")


async def test_token_in_query_string_is_refused_and_never_logged(live, alice_trip):
    alice, trip = alice_trip
    token = await sync_to_async(factories.access_token)(alice)
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/", query=f"token={token}")
    code, messages = await closed_with(ws)
    assert code == 4001
    _assert_seed_envelope(messages[0], "token_in_query_string")
    bad = "not-a-jwt-but-secret-looking"
    await _refused(live, trip, {"token": bad})
    await asyncio.sleep(0.3)  # let daphne write its access log
    log = live.log()
    assert f"/ws/trips/{trip.pk}/" in log  # the log is being written...
    assert token not in log and bad not in log  # ...and holds no credentials


async def test_other_messages_before_auth_are_refused_without_closing(live, alice_trip):
    alice, trip = alice_trip
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/")
    await send_json(ws, {"type": "echo", "id": "e-1", "data": 1})
    refused = await recv_json(ws)
    assert refused["error"]["code"] == "AUTHENTICATION_FAILED"
    assert refused["error"]["details"]["reason"] == "not_authenticated"
    assert refused["request_id"] == "e-1"
    await ws.send(b"\x00binary")
    assert (await recv_json(ws))["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    await ws.send("{not json")
    assert (await recv_json(ws))["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    token = await sync_to_async(factories.access_token)(alice)
    await send_json(ws, {"token": token})
    assert (await recv_json(ws))["type"] == "connection.established"
    await ws.close()


async def test_no_auth_message_in_time_closes(fast_server, transactional_db):
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    ws = await open_socket(fast_server.ws_url, f"/ws/trips/{trip.pk}/")
    code, messages = await closed_with(ws, timeout=5)
    assert code == 4001
    _assert_seed_envelope(messages[-1], "timeout")


async def test_foreign_origin_is_refused_before_accept(live, alice_trip):
    _, trip = alice_trip
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/", origin="https://evil.example")
    assert refused.value.response.status_code == 403


async def test_allowed_origin_connects(live, alice_trip):
    alice, trip = alice_trip
    token = await sync_to_async(factories.access_token)(alice)
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/", origin="http://localhost:8000")
    await send_json(ws, {"token": token})
    assert (await recv_json(ws))["type"] == "connection.established"
    await ws.close()


async def test_the_pages_own_origin_connects_on_any_port_with_default_settings(live, alice_trip):
    """`make run PORT=...`: the page's origin is its own host and port, listed nowhere."""
    assert live.port != 8000 and "REALTIME_ALLOWED_ORIGINS" not in live.env
    alice, trip = alice_trip
    token = await sync_to_async(factories.access_token)(alice)
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/", origin=live.http_url)
    await send_json(ws, {"token": token})
    assert (await recv_json(ws))["type"] == "connection.established"
    await ws.close()


async def _logged(server, text, timeout=10.0):
    async with asyncio.timeout(timeout):
        while True:
            for line in server.log().splitlines():
                if text in line:
                    return line
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("origin", ["https://evil-{}.example", "http://127.0.0.1:{port}"])
async def test_a_refused_origin_is_logged_with_the_setting_to_change(live, alice_trip, origin):
    """A foreign site, and the same address on another port (not the Host the socket asked)."""
    _, trip = alice_trip
    origin = origin.format(uuid.uuid4().hex[:8], port=live.port + 1)
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/", origin=origin)
    assert refused.value.response.status_code == 403
    line = await _logged(live, f"Origin {origin!r}")
    assert "WARNING" in line
    assert f"REALTIME_ALLOWED_ORIGINS={origin}" in line and "PUBLIC_URL" in line


def test_refusal_log_says_each_origin_once_per_interval(caplog):
    now = [0.0]
    log = OriginRefusalLog(interval=60, capacity=2, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="realtime.auth"):
        assert log.refused("https://a.example", "127.0.0.1:9000")
        assert not log.refused("https://a.example", "127.0.0.1:9000")
        assert log.refused("https://b.example", "127.0.0.1:9000")
        assert not log.refused("https://c.example", "127.0.0.1:9000")  # full: a flood is cut
        now[0] = 61
        assert log.refused("https://a.example", "127.0.0.1:9000")
        assert log.refused("https://c.example", "127.0.0.1:9000")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 4
    assert all("REALTIME_ALLOWED_ORIGINS" in message for message in messages)
    assert "'https://a.example'" in messages[0] and "'127.0.0.1:9000'" in messages[0]


async def test_refresh_in_band_extends_the_socket_past_the_first_token(
    fast_server, transactional_db
):
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    short = await sync_to_async(factories.access_token)(alice, lifetime_seconds=2)
    ws, _ = await connect(fast_server.ws_url, f"/ws/trips/{trip.pk}/", short)
    longer = await sync_to_async(factories.access_token)(alice, lifetime_seconds=300)
    await send_json(ws, {"type": "auth.refresh", "id": "r-1", "token": longer})
    refreshed = await recv_type(ws, "auth.refreshed")
    assert refreshed["request_id"] == "r-1"
    # Well past the first token's expiry plus the 1 s grace: still open and answering.
    deadline = asyncio.get_running_loop().time() + 4
    while asyncio.get_running_loop().time() < deadline:
        await send_json(ws, {"type": "ping", "id": "p"})
        await recv_type(ws, "pong")
        await asyncio.sleep(0.5)
    await ws.close()


async def test_expired_token_without_refresh_closes_the_socket(fast_server, transactional_db):
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    short = await sync_to_async(factories.access_token)(alice, lifetime_seconds=2)
    ws, _ = await connect(fast_server.ws_url, f"/ws/trips/{trip.pk}/", short)
    code, messages = await closed_with(ws, timeout=6)
    assert code == 4001
    _assert_seed_envelope(messages[-1], "expired")


async def test_refresh_with_another_users_token_closes(fast_server, transactional_db):
    alice = await sync_to_async(factories.make_user)("alice")
    mallory = await sync_to_async(factories.make_user)("mallory")
    trip = await sync_to_async(factories.make_trip)(alice)
    ws, _ = await connect(
        fast_server.ws_url,
        f"/ws/trips/{trip.pk}/",
        await sync_to_async(factories.access_token)(alice),
    )
    other = await sync_to_async(factories.access_token)(mallory)
    await send_json(ws, {"type": "auth.refresh", "id": "r-2", "token": other})
    code, messages = await closed_with(ws)
    assert code == 4001
    _assert_seed_envelope(messages[-1], "user_mismatch", request_id="r-2")


async def test_bad_refresh_token_is_refused_but_socket_keeps_its_token(live, alice_trip):
    alice, trip = alice_trip
    ws, _ = await connect(live.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice))
    await send_json(ws, {"type": "auth.refresh", "id": "r-3", "token": "garbage"})
    refused = await recv_json(ws)
    _assert_seed_envelope(refused, "malformed", request_id="r-3")
    await send_json(ws, {"type": "echo", "id": "e", "data": "still here"})
    assert (await recv_type(ws, "echo"))["data"] == "still here"
    await ws.close()


async def test_deactivating_a_user_closes_their_sockets_on_every_process(
    server, fast_server, transactional_db
):
    alice = await sync_to_async(factories.make_user)("alice")
    bob = await sync_to_async(factories.make_user)("bob")
    trip = await sync_to_async(factories.make_trip)(alice, {bob: "editor"})
    path = f"/ws/trips/{trip.pk}/"
    alice_a, _ = await connect(
        server.ws_url, path, await sync_to_async(factories.access_token)(alice)
    )
    alice_b, _ = await connect(
        fast_server.ws_url, path, await sync_to_async(factories.access_token)(alice)
    )
    bob_a, _ = await connect(server.ws_url, path, await sync_to_async(factories.access_token)(bob))

    alice.is_active = False
    await sync_to_async(alice.save)()

    for ws in (alice_a, alice_b):
        code, messages = await closed_with(ws)
        assert code == 4001
        _assert_seed_envelope(messages[-1], "user_inactive")
    await send_json(bob_a, {"type": "echo", "id": "e", "data": "bob unaffected"})
    assert (await recv_type(bob_a, "echo"))["data"] == "bob unaffected"
    await bob_a.close()


@pytest.mark.parametrize(
    ("first", "code", "reason"),
    [
        ('{"type":"ping","id":"\\ud800"}', "AUTHENTICATION_FAILED", "not_authenticated"),
        ("[" * 30000, "INVALID_MESSAGE_FORMAT", "too_deep"),
        ('{"token":"x","id":"a","n":1' + "0" * 5000 + "}", "INVALID_MESSAGE_FORMAT", None),
    ],
    ids=["lone-surrogate-id", "30000-deep", "5001-digits"],
)
async def test_a_frame_that_cannot_be_echoed_before_auth_is_answered_and_auth_goes_on(
    live, alice_trip, first, code, reason
):
    alice, trip = alice_trip
    log_from = len(live.log())
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip.pk}/")
    await ws.send(first)
    refused = await recv_json(ws)
    assert refused["type"] == "error", refused
    assert refused["error"]["code"] == code
    if reason is not None:
        assert refused["error"]["details"]["reason"] == reason
    assert refused["request_id"] is None
    token = await sync_to_async(factories.access_token)(alice)
    await send_json(ws, {"token": token})
    assert (await recv_json(ws))["type"] == "connection.established"
    await ws.close()
    assert "Traceback" not in live.log()[log_from:]


async def test_a_token_that_is_no_unicode_is_malformed(live, alice_trip):
    _, trip = alice_trip
    code, message = await _refused(live, trip, '{"token":"ey\\ud800","id":"a-\\udc00"}')
    assert code == 4001
    _assert_seed_envelope(message, "malformed")


async def test_sockets_opening_together_each_get_their_own_user_role_and_refusal(live):
    """A storm's user reads and snapshots are batched (events.batch): opened at once, every
    socket is still answered as its own user with its own role, a non-member and the users a
    batch cannot serve (deleted, disabled) are refused alone, and the others open."""

    def crew() -> tuple:
        owner = factories.make_user("owner")
        editors = [factories.make_user(f"editor{i}") for i in range(12)]
        viewer = factories.make_user("viewer")
        outsider = factories.make_user("outsider")
        disabled = factories.make_user("disabled", is_active=False)
        ghost = factories.make_user("ghost")
        trip = factories.make_trip(
            owner, {**dict.fromkeys(editors, "editor"), viewer: "viewer", disabled: "editor"}
        )
        tokens = {
            u.get_username(): factories.access_token(u)
            for u in (owner, *editors, viewer, outsider, disabled, ghost)
        }
        ghost.delete()
        return trip, tokens

    trip, tokens = await sync_to_async(crew)()
    path = f"/ws/trips/{trip.pk}/"

    async def attempt(name: str) -> tuple[str, str]:
        ws = await open_socket(live.ws_url, path)
        await send_json(ws, {"token": tokens[name]})
        first = await recv_json(ws)
        if first["type"] != "connection.established":
            await closed_with(ws)
            return name, first["error"]["details"].get("reason") or first["error"]["code"]
        assert first["user"]["username"] == name
        snapshot = await recv_type(ws, "trip.snapshot")
        await ws.close()
        return name, snapshot["role"]

    answers = dict(await asyncio.gather(*(attempt(name) for name in tokens)))
    assert answers == {
        "owner": "owner",
        **{f"editor{i}": "editor" for i in range(12)},
        "viewer": "viewer",
        "outsider": "AUTHORIZATION_FAILED",
        "disabled": "user_inactive",
        "ghost": "user_not_found",
    }


# -- The middleware's frame over a socket's life (one process, a WebsocketCommunicator) ---------


class _Idle:
    """An inner application that records its scope and idles until the client leaves."""

    def __init__(self) -> None:
        self.scope: dict | None = None
        self.opened = asyncio.Event()

    async def __call__(self, scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"  # replayed by the middleware
        self.scope = scope
        self.opened.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass


def _holds_lease(connection_id: str) -> bool:
    limiter = throttle()
    return connection_id in limiter.leased or any(
        connection_id in held for held in limiter.slots.held.values()
    )


def _frames_holding_a_scope(task: asyncio.Task) -> list[str]:
    """The coroutines between the task and the inner application whose frames still refer to a
    scope (a dict with headers) or to the server's receive callable."""
    found = []
    coroutine = task.get_coro()
    while coroutine is not None and getattr(coroutine, "cr_frame", None) is not None:
        name = coroutine.cr_code.co_qualname
        if name == "_Idle.__call__":
            break
        for local, value in coroutine.cr_frame.f_locals.items():
            if (isinstance(value, dict) and "headers" in value) or local == "receive":
                found.append(f"{name}: {local}")
        coroutine = coroutine.cr_await
    return found


@pytest.mark.parametrize("ending", ["disconnect", "cancel"])
async def test_an_open_socket_keeps_no_scope_in_the_middleware_and_its_lease_goes_at_the_end(
    ending, settings
):
    """Once the consumer runs, the gate's and the auth middleware's frames (which live as long as
    the socket) keep neither the scope nor the receive callable (bench S3); and the connection
    lease is released whatever ends the socket."""
    settings.REALTIME_THROTTLE_PREFIX = f"test-lease-{uuid.uuid4().hex[:8]}"
    alice = await sync_to_async(factories.make_user)("alice")
    inner = _Idle()
    gate = ConnectGate(JWTAuthMiddleware(inner), limit=10)
    communicator = WebsocketCommunicator(gate, "/ws/anything/")
    assert (await communicator.connect(10))[0]
    await communicator.send_json_to({"token": await sync_to_async(factories.access_token)(alice)})
    await asyncio.wait_for(inner.opened.wait(), 10)
    assert inner.scope["user"].pk == alice.pk
    connection_id = inner.scope["auth"].connection_id
    assert _holds_lease(connection_id)
    assert _frames_holding_a_scope(communicator.future) == []

    if ending == "disconnect":
        await communicator.disconnect(10)
    else:
        communicator.future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await communicator.future
    for _ in range(100):  # the release is shielded: it may finish a moment after the task
        if not _holds_lease(connection_id):
            break
        await asyncio.sleep(0.02)
    assert not _holds_lease(connection_id)
    assert gate.opening == 0
