"""One socket's figures (the seed's ConnectionMetrics): every frame that crossed the socket, each
way, in UTF-8 bytes, so that a client counting its own frames gets the same numbers; and
`GET /api/metrics/connections/<connection_id>/`, which shows them to staff."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient
from websockets.exceptions import ConnectionClosed

from metrics.models import ConnectionSession
from metrics.services import request_disconnect
from tests import factories
from tests.wsclient import TIMEOUT, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

# Rows refreshed at every flush, and flushed often: a row is at most a moment behind its socket.
FRESH = {"METRICS_FLUSH_SECONDS": "0.2", "METRICS_LIVE_REFRESH_SECONDS": "0"}
TEXT = "Zürich ✈ 東京 🧳"  # 1, 2, 3 and 4 UTF-8 bytes per character


@pytest.fixture(scope="module")
def fresh(module_daphne_factory):
    return module_daphne_factory("metrics-socket", **FRESH)


class Tally:
    """A socket's frames as its client saw them: text frames each way, and their UTF-8 bytes.
    A reader task takes every frame the server sends, answering its pings as a client must."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.sent = self.bytes_sent = self.received = self.bytes_received = 0
        self.messages: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, ensure_ascii=False)  # as a browser's JSON.stringify does
        await self.ws.send(text)
        self.sent += 1
        self.bytes_sent += len(text.encode())

    def start(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                self.received += 1
                self.bytes_received += len(text.encode() if isinstance(text, str) else text)
                message = json.loads(text)
                self.messages.append(message)
                if message["type"] == "ping":
                    await self.send({"type": "pong", "request_id": message["id"]})
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def reply(self, request_id: str) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for message in self.messages:
                    if message.get("request_id") == request_id:
                        return message
                await asyncio.sleep(0.02)

    def figures(self) -> dict[str, int]:
        """What the server must have counted for this socket, from its side."""
        return {
            "messages_received": self.sent,
            "bytes_received": self.bytes_sent,
            "messages_sent": self.received,
            "bytes_sent": self.bytes_received,
        }


SEED_FIELDS = {
    "connectionId", "userId", "connectionType", "connectedAt", "lastActivity", "messagesSent",
    "messagesReceived", "bytesSent", "bytesReceived", "errors", "reconnectAttempts",
    "averageLatency", "peakLatency", "connectionDrops",
}  # fmt: skip
API_NAMES = {
    "messages_received": "messagesReceived",
    "bytes_received": "bytesReceived",
    "messages_sent": "messagesSent",
    "bytes_sent": "bytesSent",
}


def staff_client() -> APIClient:
    staff = factories.make_user("ops", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    return client


async def agreed(
    client: APIClient, cid: str, tally: Tally, *, ended: bool = False, timeout: float = 10.0
) -> Any:
    """The socket's figures from `GET /api/metrics/connections/<id>/` once they are what the
    client counted (the flush is a moment behind); fails with both sides' figures if they never
    are."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while True:
        response = await sync_to_async(client.get)(f"/api/metrics/connections/{cid}/")
        expected = tally.figures()
        if response.status_code == 200:
            body = response.json()
            seen = {key: body[name] for key, name in API_NAMES.items()}
            if seen == expected and body["open"] is not ended:
                return body
        else:
            assert response.status_code == 404, response.content  # no row yet
        assert time.monotonic() < deadline, f"server {seen} != client {expected}"
        await asyncio.sleep(0.1)


async def test_a_sockets_figures_count_every_frame_each_way_in_utf8_bytes(fresh):
    alice, _, _, trip = await sync_to_async(factories.make_crew)()
    staff = await sync_to_async(staff_client)()
    ws = await open_socket(fresh.ws_url, f"/ws/trips/{trip.pk}/")
    tally = Tally(ws)
    tally.start()
    # The token frame crosses the socket like any other: the server counts it too.
    await tally.send({"token": factories.access_token(alice), "id": "auth-1"})
    established = await tally.reply("auth-1")
    cid = established["connection_id"]
    await tally.send({"type": "echo", "id": "e-1", "data": TEXT})
    echoed = await tally.reply("e-1")
    assert echoed["data"] == TEXT
    await tally.send({"type": "no.such.type", "id": "bad-1"})
    assert (await tally.reply("bad-1"))["type"] == "error"

    body = await agreed(staff, cid, tally)
    assert set(body) >= SEED_FIELDS
    assert body["connectionId"] == cid and body["userId"] == str(alice.pk)
    assert body["connectionType"] == "trip_collaboration" and body["tripId"] == trip.pk
    assert body["errors"] == 1 and body["reconnectAttempts"] == 0

    # An operator's disconnect: its envelope is the socket's last frame, counted in the final row.
    await sync_to_async(request_disconnect)([cid])
    await asyncio.wait_for(tally.closed.wait(), TIMEOUT)
    assert tally.messages[-1]["error"]["details"]["reason"] == "closed_by_operator"
    body = await agreed(staff, cid, tally, ended=True)
    assert body["closeCode"] == 4010 and body["endReason"] == "closed_by_operator"
    assert body["errors"] == 1  # the operator's envelope is the server's, not the client's error


def _session(**fields: Any) -> ConnectionSession:
    now = timezone.now()
    defaults = {
        "connection_id": "0123456789abcdef0123456789abcdef",
        "username": "alice",
        "connection_type": "chat",
        "process": "web-1:7",
        "connected_at": now,
        "last_activity": now,
        "last_seen": now,
    }
    return ConnectionSession.objects.create(**{**defaults, **fields})


def test_staff_read_one_sockets_figures_under_the_seeds_names():
    alice = factories.make_user("alice")
    _session(
        user=alice, messages_received=3, messages_sent=7, bytes_received=300, bytes_sent=700,
        errors=1, average_latency_ms=12.3456, peak_latency_ms=20.0, reconnect_attempts=1,
    )  # fmt: skip
    response = staff_client().get("/api/metrics/connections/0123456789abcdef0123456789abcdef/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= SEED_FIELDS
    assert body["userId"] == str(alice.pk) and body["username"] == "alice"
    assert (body["messagesReceived"], body["messagesSent"]) == (3, 7)
    assert (body["bytesReceived"], body["bytesSent"]) == (300, 700)
    assert body["averageLatency"] == 12.35 and body["peakLatency"] == 20.0
    assert body["reconnectAttempts"] == 1 and body["open"] is True and body["endedAt"] is None
    assert isinstance(body["connectedAt"], int)  # ms since the epoch, as the seed's Date.now()


def test_a_socket_without_heartbeats_has_no_latency():
    _session()
    body = staff_client().get("/api/metrics/connections/0123456789abcdef0123456789abcdef/").json()
    assert body["averageLatency"] is None and body["peakLatency"] is None


def test_only_staff_read_a_sockets_figures():
    alice = factories.make_user("alice")
    _session(user=alice)
    url = "/api/metrics/connections/0123456789abcdef0123456789abcdef/"
    member = APIClient()
    member.force_authenticate(alice)  # even the socket's own user
    refused = member.get(url)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    anonymous = APIClient().get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AUTHENTICATION_FAILED"


def test_an_unknown_socket_is_not_found():
    response = staff_client().get("/api/metrics/connections/ffffffffffffffffffffffffffffffff/")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "AUTHORIZATION_FAILED" and error["details"]["reason"] == "not_found"


@pytest.mark.parametrize(
    "bad",
    ["abc", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdef0", "%C3%A9" * 16],
    ids=["short", "upper-case", "long", "non-ascii"],
)
def test_a_malformed_connection_id_is_refused(bad):
    response = staff_client().get(f"/api/metrics/connections/{bad}/")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_MESSAGE_FORMAT"
    assert "connection_id" in error["details"]["fields"]


def test_the_schema_documents_the_per_socket_view():
    schema = APIClient().get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/metrics/connections/{connection_id}/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"connection_id"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    name = ok["$ref"].rsplit("/", 1)[-1]
    properties = schema["components"]["schemas"][name]["properties"]
    assert set(properties) >= SEED_FIELDS
