"""The security event log (events.security, docs/security-log.md; issue 20 item 3): what an
operator reads in the file SECURITY_LOG_FILE names, from a real daphne process, for sign-ins,
socket authentications, refreshes, revocations, operator disconnects and membership changes; and
never a token or a password in it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from events import security
from metrics.services import request_disconnect
from tests import factories
from tests.conftest import DaphneServer
from tests.wsclient import closed_with, connect, open_socket, recv_type, send_json

pytestmark = pytest.mark.django_db(transaction=True)

# docs/security-log.md's table of fields; a record holds no others.
FIELDS = {
    "ts", "level", "event", "outcome", "user_id", "connection_id", "remote_addr", "reason",
    "actor_id", "username", "trip_id", "role", "previous_role", "connection_type", "origin",
    "connection_ids", "method", "path", "action",
}  # fmt: skip


class LogFile:
    """The server's security log, from where it stood when the test began (the server and its
    file serve every test in this module, and user ids repeat from test to test)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def read(self) -> str:
        if not self.path.exists():
            return ""
        with self.path.open("rb") as file:
            file.seek(self.start)
            return file.read().decode()


@pytest.fixture(scope="module")
def _server_with_log(
    module_daphne_factory: Callable[..., DaphneServer], tmp_path_factory: pytest.TempPathFactory
) -> tuple[DaphneServer, Path]:
    path = tmp_path_factory.mktemp("security") / "security.log"
    return module_daphne_factory("security-log", SECURITY_LOG_FILE=str(path)), path


@pytest.fixture
def logged_server(_server_with_log: tuple[DaphneServer, Path]) -> tuple[DaphneServer, LogFile]:
    server, path = _server_with_log
    return server, LogFile(path)


@pytest.fixture
def here() -> Iterator[io.StringIO]:
    """This process's security lines (the services the test calls itself), formatted as the
    configured handler formats them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(security.JsonLinesFormatter())
    security.logger.addHandler(handler)
    yield out
    security.logger.removeHandler(handler)


def lines(text: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        assert set(record) <= FIELDS, record
        assert record["event"] in set(security.Event), record
    return records


async def until(log: LogFile, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first record this test's part of the file has that `predicate` accepts (the server
    writes as it goes)."""
    async with asyncio.timeout(10):
        while True:
            text = await asyncio.to_thread(log.read)
            found = [r for r in lines(text) if predicate(r)]
            if found:
                return found[0]
            await asyncio.sleep(0.05)


def request(
    server: DaphneServer, method: str, path: str, token: str | None, body: Any = None
) -> int:
    """The status of one REST call to the server (as `token`'s user, if given)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{server.http_url}{path}", data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_sign_ins_and_socket_authentications_are_recorded_without_secrets(logged_server):
    server, path = logged_server
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    call = sync_to_async(request)

    # A refused sign-in: the name tried and the address, never the password.
    wrong = {"username": "alice", "password": "hunter2!"}
    assert await call(server, "POST", "/api/auth/token/", None, wrong) == 401
    failed = await until(path, lambda r: r["event"] == "auth.login_failed")
    assert failed["outcome"] == "failure"
    assert failed["username"] == "alice"
    assert failed["remote_addr"] == "127.0.0.1"
    assert failed["reason"] == "invalid_credentials"
    assert failed["method"] == "token"

    right = {"username": "alice", "password": factories.PASSWORD}
    assert await call(server, "POST", "/api/auth/token/", None, right) == 200
    signed_in = await until(path, lambda r: r["event"] == "auth.login_succeeded")
    assert signed_in["user_id"] == alice.pk and signed_in["remote_addr"] == "127.0.0.1"

    # REST refreshes, granted and refused.
    refresh = await sync_to_async(factories.refresh_token)(alice)
    assert await call(server, "POST", "/api/auth/token/refresh/", None, {"refresh": refresh}) == 200
    renewed = await until(path, lambda r: r["event"] == "auth.token_refreshed")
    assert (renewed["user_id"], renewed["remote_addr"]) == (alice.pk, "127.0.0.1")
    assert await call(server, "POST", "/api/auth/token/refresh/", None, {"refresh": "x.y.z"}) == 401
    refused_refresh = await until(path, lambda r: r["event"] == "auth.token_refresh_failed")
    assert refused_refresh["reason"] == "token_invalid"

    # A forged token on a socket, then a good one.
    forged = factories.signed(
        factories.claims_for(alice), key=factories.foreign_private_pem(), algorithm="RS256"
    )
    ws = await open_socket(server.ws_url, f"/ws/trips/{trip.pk}/")
    await send_json(ws, {"token": forged, "id": "a"})
    code, _ = await closed_with(ws)
    assert code == 4001
    refused = await until(path, lambda r: r["event"] == "socket.auth_failed")
    assert refused["outcome"] == "failure"
    assert refused["remote_addr"] == "127.0.0.1"
    assert refused["reason"] == "invalid_signature"
    assert "user_id" not in refused  # an unverified token names nobody

    token = await sync_to_async(factories.access_token)(alice)
    ws, established = await connect(server.ws_url, f"/ws/trips/{trip.pk}/", token)
    connection_id = established["connection_id"]
    opened = await until(path, lambda r: r["event"] == "socket.authenticated")
    assert opened["user_id"] == alice.pk
    assert opened["connection_id"] == connection_id
    assert opened["remote_addr"] == "127.0.0.1"
    assert opened["path"] == f"/ws/trips/{trip.pk}/"

    # auth.refresh, granted and refused, on that socket.
    fresh = await sync_to_async(factories.access_token)(alice)
    await send_json(ws, {"type": "auth.refresh", "id": "r1", "token": fresh})
    await recv_type(ws, "auth.refreshed")
    refreshed = await until(path, lambda r: r["event"] == "socket.refreshed")
    assert (refreshed["user_id"], refreshed["connection_id"]) == (alice.pk, connection_id)
    await send_json(ws, {"type": "auth.refresh", "id": "r2", "token": forged})
    await recv_type(ws, "error")
    bad = await until(path, lambda r: r["event"] == "socket.refresh_failed")
    assert (bad["connection_id"], bad["reason"]) == (connection_id, "invalid_signature")
    await ws.close()

    text = await asyncio.to_thread(path.read)
    for secret in (forged, token, fresh, refresh, factories.PASSWORD, "hunter2!"):
        assert secret not in text
    assert "hunter2" not in text


async def test_revocations_and_operator_disconnects_are_recorded(logged_server, here):
    server, path = logged_server
    bob = await sync_to_async(factories.make_user)("bob")
    root = await sync_to_async(factories.make_user)("root", is_staff=True, is_superuser=True)
    token = await sync_to_async(factories.access_token)(bob)
    ws, established = await connect(server.ws_url, "/ws/notifications/", token)
    first = established["connection_id"]

    await sync_to_async(request_disconnect)([first], actor_id=root.pk)
    code, _ = await closed_with(ws)
    assert code == 4010
    asked = [r for r in lines(here.getvalue()) if r["event"] == "operator.disconnect"]
    assert asked == [
        {**asked[0], "actor_id": root.pk, "connection_ids": [first], "outcome": "success"}
    ]
    closed = await until(path, lambda r: r["event"] == "socket.closed_by_operator")
    assert (closed["user_id"], closed["connection_id"]) == (bob.pk, first)
    assert closed["connection_type"] == "notifications"
    assert closed["remote_addr"] == "127.0.0.1"

    ws, established = await connect(server.ws_url, "/ws/notifications/", token)
    await sync_to_async(_deactivate)(bob.pk)
    code, _ = await closed_with(ws)
    assert code == 4001
    revoked = [r for r in lines(here.getvalue()) if r["event"] == "user.revoked"]
    assert [(r["user_id"], r["reason"]) for r in revoked] == [(bob.pk, "deactivated")]
    one = await until(path, lambda r: r["event"] == "socket.revoked")
    assert (one["user_id"], one["connection_id"]) == (bob.pk, established["connection_id"])


def _deactivate(user_id: int) -> None:
    """What an admin's "active" checkbox does."""
    user = get_user_model().objects.get(pk=user_id)
    user.is_active = False
    user.save()


async def test_membership_changes_are_recorded_with_who_and_from_where(logged_server):
    server, path = logged_server
    owner = await sync_to_async(factories.make_user)("owner")
    carol = await sync_to_async(factories.make_user)("carol")
    trip = await sync_to_async(factories.make_trip)(owner)
    token = await sync_to_async(factories.access_token)(owner)
    call = sync_to_async(request)
    members = f"/api/trips/{trip.pk}/members/"

    assert await call(server, "POST", members, token, {"username": "carol", "role": "viewer"}) in (
        200,
        201,
    )
    added = await until(path, lambda r: r["event"] == "member.added")
    assert added == {
        **added,
        "user_id": carol.pk,
        "actor_id": owner.pk,
        "trip_id": trip.pk,
        "role": "viewer",
        "remote_addr": "127.0.0.1",
    }
    assert await call(server, "POST", members, token, {"username": "carol", "role": "editor"}) in (
        200,
        201,
    )
    changed = await until(path, lambda r: r["event"] == "member.role_changed")
    assert (changed["role"], changed["previous_role"]) == ("editor", "viewer")
    assert await call(server, "DELETE", f"{members}{carol.pk}/", token) in (200, 204)
    removed = await until(path, lambda r: r["event"] == "member.removed")
    assert removed == {
        **removed,
        "user_id": carol.pk,
        "actor_id": owner.pk,
        "previous_role": "editor",
        "remote_addr": "127.0.0.1",
    }
    # A refused change (not an owner) changed nothing, and records nothing.
    intruder = await sync_to_async(factories.make_user)("intruder")
    bad = await sync_to_async(factories.access_token)(intruder)
    assert await call(server, "POST", members, bad, {"username": "intruder", "role": "owner"}) in (
        403,
        404,
    )
    # The answer came after the commit, so a record would be in the file already.
    after = lines(await asyncio.to_thread(path.read))
    assert not [r for r in after if intruder.pk in (r.get("user_id"), r.get("actor_id"))]


@pytest.mark.django_db(transaction=True)
def test_a_revocation_is_recorded_when_the_account_is_deactivated_not_at_each_later_save(here):
    user = factories.make_user("dora")
    user.first_name = "Dora"
    user.save()  # active: nothing to record
    _deactivate(user.pk)
    user.refresh_from_db()
    user.last_name = "Explorer"
    user.save()  # still inactive: revoked already
    user.save(update_fields=["last_name"])
    revoked = [r for r in lines(here.getvalue()) if r["event"] == "user.revoked"]
    assert [(r["user_id"], r["reason"]) for r in revoked] == [(user.pk, "deactivated")]
    user.is_active = True
    user.save()
    _deactivate(user.pk)  # deactivated again: recorded again
    revoked = [r for r in lines(here.getvalue()) if r["event"] == "user.revoked"]
    assert [r["reason"] for r in revoked] == ["deactivated", "deactivated"]
    user.delete()
    revoked = [r for r in lines(here.getvalue()) if r["event"] == "user.revoked"]
    assert [r["reason"] for r in revoked] == ["deactivated", "deactivated", "deleted"]


def test_a_record_is_one_json_line_that_client_input_cannot_break(here):
    security.record(
        security.Event.LOGIN_FAILED,
        username='x"}\n{"event": "auth.login_succeeded", "user_id": 1}' + "y" * 500,
        remote_addr="203.0.113.9",
        reason="invalid_credentials",
    )
    (record,) = lines(here.getvalue())
    assert record["event"] == "auth.login_failed"
    assert record["username"].startswith('x"}\n{"event"')
    assert len(record["username"]) == security.MAX_INPUT_CHARS


def test_a_record_takes_only_the_documented_fields():
    with pytest.raises(TypeError):
        security.record(security.Event.LOGIN_FAILED, token="eyJ...")  # type: ignore[call-arg]


def test_a_bound_request_gives_its_address_to_the_services_it_calls(here):
    with security.bind(remote_addr="198.51.100.7"):
        security.record(security.Event.MEMBER_REMOVED, user_id=3, actor_id=3, reason="left")
    security.record(security.Event.MEMBER_REMOVED, user_id=3)
    inside, outside = lines(here.getvalue())
    assert inside["remote_addr"] == "198.51.100.7"
    assert "remote_addr" not in outside


def test_every_event_is_documented():
    page = (Path(__file__).resolve().parent.parent / "docs" / "security-log.md").read_text()
    missing = [str(event) for event in security.Event if f"`{event}`" not in page]
    assert missing == []
    missing_fields = [name for name in FIELDS if f"`{name}`" not in page]
    assert missing_fields == []


async def test_refused_rights_are_recorded_on_rest_and_on_sockets(logged_server):
    server, path = logged_server
    owner = await sync_to_async(factories.make_user)("owner")
    viewer = await sync_to_async(factories.make_user)("viewer")
    stranger = await sync_to_async(factories.make_user)("stranger")
    trip = await sync_to_async(factories.make_trip)(owner, {viewer: "viewer"})
    viewer_token = await sync_to_async(factories.access_token)(viewer)
    call = sync_to_async(request)

    # A viewer may not manage members: 403, recorded with the request as its action.
    members = f"/api/trips/{trip.pk}/members/"
    body = {"username": "stranger", "role": "viewer"}
    assert await call(server, "POST", members, viewer_token, body) == 403
    denied = await until(path, lambda r: r["event"] == "access.denied")
    assert denied == {
        **denied,
        "outcome": "failure",
        "user_id": viewer.pk,
        "action": f"POST {members}",
        "remote_addr": "127.0.0.1",
    }

    # A viewer's edit on the socket, refused: the message type is the action.
    ws, established = await connect(server.ws_url, f"/ws/trips/{trip.pk}/", viewer_token)
    version = ws.snapshot["trip"]["version"]
    await send_json(
        ws,
        {
            "type": "trip.update",
            "id": "u1",
            "update_id": "6f1c2b9e-8a55-4e0e-9a51-0c6f9f4f2a11",
            "field": "name",
            "value": "mine now",
            "base_version": version,
        },
    )
    error = await recv_type(ws, "error")
    assert error["error"]["code"] == "AUTHORIZATION_FAILED"
    edit = await until(path, lambda r: r.get("action") == "trip.update")
    assert (edit["user_id"], edit["connection_id"]) == (viewer.pk, established["connection_id"])
    await ws.close()

    # A stranger's socket on the trip: refused at connect (4003).
    stranger_token = await sync_to_async(factories.access_token)(stranger)
    ws = await open_socket(server.ws_url, f"/ws/trips/{trip.pk}/")
    await send_json(ws, {"token": stranger_token, "id": "a"})
    code, _ = await closed_with(ws)
    assert code == 4003
    refused = await until(
        path, lambda r: r["event"] == "access.denied" and r["user_id"] == stranger.pk
    )
    assert (refused["action"], refused["path"]) == ("connect", f"/ws/trips/{trip.pk}/")
