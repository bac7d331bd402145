"""Connection metrics: collected in memory, written in batches, shown to staff, across processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from metrics.collector import prune_history
from metrics.models import ConnectionSession, MetricsSnapshot
from tests import factories
from tests.wsclient import closed_with, connect, recv_type, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"METRICS_FLUSH_SECONDS": "0.5", "METRICS_LIVE_REFRESH_SECONDS": "1"}


@pytest.fixture(scope="module")
def metered(module_daphne_factory):
    """Two processes flushing metrics every 0.5 s."""
    return module_daphne_factory("metrics-a", **FAST), module_daphne_factory("metrics-b", **FAST)


@pytest.fixture
def crew(transactional_db):
    return factories.make_crew()


async def eventually(check, timeout: float = 10.0):
    """Poll the database until `check()` (sync) returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = await sync_to_async(check)()
        if found:
            return found
        assert time.monotonic() < deadline, "not written in time"
        await asyncio.sleep(0.2)


async def echo(ws, n: int) -> None:
    await send_json(ws, {"type": "echo", "id": f"e-{n}", "data": "x" * 100})
    await recv_until(ws, lambda m: m.get("request_id") == f"e-{n}")


async def test_counters_are_written_in_batches_and_shown_to_staff(metered, crew):
    a, b = metered
    alice, bob, _, trip = crew
    trip_ws, established = await connect(
        a.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice)
    )
    chat_ws, _chat_established = await connect(
        b.ws_url, f"/ws/chat/{trip.pk}/", factories.access_token(bob)
    )
    for n in range(5):
        await echo(trip_ws, n)
    cid = established["connection_id"]

    def flushed():
        row = ConnectionSession.objects.filter(connection_id=cid).first()
        return row if row and row.messages_received >= 6 else None

    row = await eventually(flushed)
    assert row.username == "alice" and row.connection_type == "trip_collaboration"
    assert row.trip_id == trip.pk and row.ended_at is None
    assert row.messages_received == 6  # the token frame and the five echoes
    assert row.messages_sent >= 5 + 3 and row.bytes_sent > 500 and row.bytes_received > 500
    assert row.errors == 0

    staff = await sync_to_async(get_user_model().objects.create_superuser)(
        "ops", password=factories.PASSWORD
    )
    client = APIClient()
    await sync_to_async(client.force_authenticate)(staff)

    def both_live():
        body = client.get("/api/metrics/").json()
        return body if body["global"]["activeConnections"] == 2 else None

    body = await eventually(both_live)
    assert len(body["processes"]) == 2
    assert body["by_type"]["trip_collaboration"]["active_connections"] == 1
    assert body["by_type"]["chat"]["active_connections"] == 1
    assert body["global"]["totalMessagesReceived"] >= 5
    assert body["history"] and body["history"][-1]["active_connections"] >= 1

    viewer = APIClient()
    await sync_to_async(viewer.force_authenticate)(alice)
    refused = await sync_to_async(viewer.get)("/api/metrics/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AUTHORIZATION_FAILED"

    await trip_ws.close()

    def ended():
        row = ConnectionSession.objects.get(connection_id=cid)
        return row if row.ended_at else None

    row = await eventually(ended)
    assert row.close_code == 1000 and row.end_reason == "client_closed"
    assert row.messages_received == 6
    await chat_ws.close()


async def test_no_database_write_per_message(daphne_factory, crew):
    """With the flush far away, a busy socket leaves no row at all: nothing is written per
    message (the previous test shows the same counters arriving at the flush)."""
    server = daphne_factory("metrics-never", METRICS_FLUSH_SECONDS="3600")
    alice, _, _, trip = crew
    ws, established = await connect(
        server.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice)
    )
    for n in range(30):
        await echo(ws, n)
    exists = await sync_to_async(
        ConnectionSession.objects.filter(connection_id=established["connection_id"]).exists
    )()
    assert not exists
    await ws.close()


async def test_the_admin_disconnects_a_socket_on_whichever_process_holds_it(metered, crew):
    _a, b = metered
    alice, *_, trip = crew
    ws, established = await connect(
        b.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice)
    )
    cid = established["connection_id"]
    row = await eventually(lambda: ConnectionSession.objects.filter(connection_id=cid).first())
    await sync_to_async(get_user_model().objects.create_superuser)(
        "ops", password=factories.PASSWORD
    )

    def disconnect():
        browser = Client()
        assert browser.login(username="ops", password=factories.PASSWORD)
        listing = browser.get("/admin/metrics/liveconnection/?q=alice")
        assert cid[:12] in listing.content.decode()
        return browser.post(
            "/admin/metrics/liveconnection/",
            {"action": "disconnect", "_selected_action": [row.pk]},
        )

    response = await sync_to_async(disconnect)()
    assert response.status_code == 302
    code, messages = await closed_with(ws)
    assert code == 4010
    assert messages[-1]["error"]["details"]["reason"] == "closed_by_operator"

    def ended():
        row = ConnectionSession.objects.get(connection_id=cid)
        return row if row.ended_at else None

    row = await eventually(ended)
    assert row.close_code == 4010 and row.end_reason == "closed_by_operator"


async def test_a_killed_process_leaves_no_live_sessions(metered, daphne_factory, crew):
    a, _ = metered
    doomed = daphne_factory(f"metrics-doomed-{uuid.uuid4().hex[:4]}", **FAST)
    alice, *_, trip = crew
    _ws, established = await connect(
        doomed.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice)
    )
    keep, _ = await connect(a.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice))
    cid = established["connection_id"]
    await eventually(lambda: ConnectionSession.objects.filter(connection_id=cid).first())
    doomed.process.kill()
    doomed.process.wait(timeout=10)

    def lost():
        row = ConnectionSession.objects.get(connection_id=cid)
        return row if row.ended_at else None

    row = await eventually(lost, timeout=20)
    assert row.end_reason == "process_lost"
    await keep.close()


async def test_prometheus_counts_messages_fanout_and_conflicts(metered, crew):
    a, _ = metered
    alice, bob, _, trip = crew
    ws_alice, _ = await connect(a.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice))
    ws_bob, _ = await connect(a.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(bob))
    version = ws_alice.opening["trip"]["version"]
    for ws, value in ((ws_alice, "100"), (ws_bob, "200")):
        await send_json(
            ws,
            {
                "type": "trip.update",
                "update_id": str(uuid.uuid4()),
                "field": "budget",
                "value": value,
                "base_version": version,
            },
        )
        await recv_type(ws, "ack")  # bob's trip.updated for alice's edit came before it

    trips = {"connection_type": "trip_collaboration"}
    assert await asyncio.to_thread(a.metric, "tripsage_ws_messages_sent_total", **trips) > 0
    assert await asyncio.to_thread(a.metric, "tripsage_fanout_latency_seconds_count", **trips) > 0
    assert await asyncio.to_thread(a.metric, "tripsage_ws_received_bytes_total", **trips) > 0
    assert await asyncio.to_thread(a.metric, "tripsage_conflicts_total", event="detected") >= 1
    for ws in (ws_alice, ws_bob):
        await ws.close()


def test_old_history_is_pruned(settings):
    settings.METRICS_SESSION_RETENTION_DAYS = 30
    settings.METRICS_SNAPSHOT_RETENTION_HOURS = 24
    now = timezone.now()

    def session(ended_days_ago: float | None) -> ConnectionSession:
        return ConnectionSession.objects.create(
            connection_id=uuid.uuid4().hex, username="x", connection_type="chat",
            process="p", connected_at=now, last_activity=now, last_seen=now,
            ended_at=None if ended_days_ago is None else now - timedelta(days=ended_days_ago),
        )  # fmt: skip

    old, recent, open_ = session(31), session(29), session(None)
    for hours in (25, 23):
        MetricsSnapshot.objects.create(
            process="p", taken_at=now - timedelta(hours=hours), active_connections=0,
            connections_total=0, messages_received=0, messages_sent=0, errors=0, started_at=now,
        )  # fmt: skip
    assert prune_history(now) == (1, 1)
    remaining = set(ConnectionSession.objects.filter(process="p").values_list("pk", flat=True))
    assert remaining == {recent.pk, open_.pk} and old.pk not in remaining
    assert MetricsSnapshot.objects.filter(process="p").count() == 1


def test_history_counts_a_new_process_from_its_first_snapshot():
    """Traffic before a process's first flush shows up: its first snapshot's counts all
    happened since it started."""
    from metrics.selectors import _history

    now = timezone.now()
    started = now - timedelta(seconds=20)

    def snap(seconds_ago: float, sent: int, received: int, errors: int) -> MetricsSnapshot:
        return MetricsSnapshot(
            process="q", taken_at=now - timedelta(seconds=seconds_ago), active_connections=1,
            connections_total=1, messages_sent=sent, messages_received=received, errors=errors,
            started_at=started,
        )  # fmt: skip

    snapshots = [snap(5, 30, 12, 1), snap(15, 10, 4, 0)]  # newest first, as read
    points = _history(snapshots, now, now - timedelta(minutes=30))
    assert [p["messages"] for p in points] == [14, 28]
    assert [p["errors"] for p in points] == [0, 1]
    # Rates over the time the counts cover: 14 in the 5 s since start, 28 in the next 10 s.
    assert [p["messages_per_minute"] for p in points] == [168.0, 168.0]
    assert [p["errors_per_minute"] for p in points] == [0.0, 6.0]
    # A process that started before the window: its first snapshot in view is a baseline.
    old = _history(snapshots, now, started + timedelta(seconds=1))
    assert [p["messages"] for p in old] == [0, 28]


def test_a_flush_writes_new_refreshed_and_final_rows():
    """One flush's three kinds of row, written as plain statements: a socket that opened and
    closed between two flushes still gets its row; a refresh for a socket with no row yet
    creates nothing; a final row keeps the identity written at connect."""
    from metrics.collector import write_batch

    now = timezone.now()
    user = factories.make_user("metered")

    def identity(cid: str) -> dict:
        return {
            "connection_id": cid, "user_id": user.pk, "username": "metered",
            "connection_type": "chat", "trip_id": 7, "process": "flush-test",
            "client_address": "127.0.0.1", "connected_at": now - timedelta(minutes=1),
        }  # fmt: skip

    def counted(sent: int) -> dict:
        return {
            "messages_received": 2, "messages_sent": sent, "bytes_received": 20,
            "bytes_sent": 10 * sent, "errors": 1, "reconnect_attempts": 0,
            "average_latency_ms": 3.5, "peak_latency_ms": 9.0, "connection_drops": 0,
            "last_activity": now,
        }  # fmt: skip

    def final(cid: str, sent: int, code: int) -> dict:
        return {**identity(cid), **counted(sent), "ended_at": now, "close_code": code,
                "end_reason": "client_closed"}  # fmt: skip

    class Socket:  # what write_batch's row_of is given for a new socket
        def __init__(self, cid: str) -> None:
            self.cid = cid

    snapshot = {
        "process": "flush-test", "active_connections": 1, "connections_total": 3,
        "messages_received": 0, "messages_sent": 0, "errors": 0, "latency_sum_ms": 0.0,
        "latency_count": 0, "by_type": {}, "started_at": now,
    }  # fmt: skip
    write_batch(
        [Socket("open-1"), Socket("closing-1")], [], [], snapshot,
        row_of=lambda s: {**identity(s.cid), **counted(1)},
    )  # fmt: skip
    assert ConnectionSession.objects.filter(process="flush-test").count() == 2

    write_batch(
        [],
        [{"connection_id": "open-1", **counted(40)}, {"connection_id": "unknown", **counted(5)}],
        [final("closing-1", 12, 1000), final("brief-1", 3, 4001)],
        snapshot,
    )
    rows = {r.connection_id: r for r in ConnectionSession.objects.filter(process="flush-test")}
    assert set(rows) == {"open-1", "closing-1", "brief-1"}
    assert rows["open-1"].messages_sent == 40 and rows["open-1"].bytes_sent == 400
    assert rows["open-1"].ended_at is None and rows["open-1"].close_code is None
    closing = rows["closing-1"]
    assert closing.messages_sent == 12 and closing.close_code == 1000
    assert closing.end_reason == "client_closed" and closing.ended_at is not None
    assert closing.username == "metered" and closing.user_id == user.pk
    brief = rows["brief-1"]
    assert brief.close_code == 4001 and brief.messages_sent == 3 and brief.trip_id == 7
    assert brief.average_latency_ms == 3.5 and brief.last_seen is not None


async def test_final_rows_wait_for_the_database_and_no_process_is_lost_to_its_absence(monkeypatch):
    """While the database is away (the write fails with OperationalError) closed sockets'
    final rows wait for the next flush, however many fail; after any other error they get one
    more attempt. Other processes' sessions are ended as lost only once this process has
    written for a whole live window (every snapshot is old after an outage), and not after a
    pause that long either."""
    from django.db import OperationalError

    from metrics import collector as module

    writes: list[dict] = []
    failure: list[Exception] = [OperationalError("connection refused")]

    def db(func, **_options):
        async def write(new, changed, ended, snapshot, prune, row_of, *, sweep):
            writes.append({"ended": [row["connection_id"] for row in ended], "sweep": sweep})
            if failure:
                raise failure[0]

        return write

    monkeypatch.setattr(module, "db", db)
    now = [1000.0]
    collector = module.Collector(clock=lambda: now[0])
    collector.ended = [{"connection_id": "closed-1"}]
    for _ in range(4):
        now[0] += 5
        with pytest.raises(OperationalError):
            await collector.flush()
    assert [w["ended"] for w in writes] == [["closed-1"]] * 4
    assert [row["connection_id"] for row in collector.ended] == ["closed-1"]

    failure[:] = [ValueError("a row the database refuses")]
    with pytest.raises(ValueError):
        await collector.flush()
    with pytest.raises(ValueError):
        await collector.flush()
    assert writes[-1]["ended"] == ["closed-1"] and collector.ended == []

    failure.clear()
    window = module.live_window().total_seconds()
    sweeps = []
    for step in (0, window - 1, 1, 1, window + 1, 1):
        now[0] += step
        await collector.flush()
        sweeps.append(writes[-1]["sweep"])
    assert not any(w["sweep"] for w in writes[:6])  # never while failing
    assert sweeps == [False, False, True, True, False, False]
