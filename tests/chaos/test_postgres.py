"""PostgreSQL away under load (issue 14, item 7): two daphne processes reach PostgreSQL through a
TCP forwarder of the test's own, and while three people edit one trip (two over sockets, one on
each process, and one over REST) the test terminates every connection of the two processes again
and again (pg_terminate_backend), or cuts the network to PostgreSQL for a few seconds (the
forwarder resets every connection and refuses new ones, as a restarting server does).

What users must see: each edit answered within the timeouts with an ack or SERVER_ERROR
(`retryable: true`), never a hang; an open socket stays open (never 1011); a socket opened while
the database is away gets SERVER_ERROR (retryable) and the documented close; every acknowledged
edit is in the database and the trip's event log once; and once PostgreSQL answers again the same
processes serve new sockets, edits and REST requests with no further error (persistent
connections are re-opened by themselves), and their logs hold no traceback beyond the faults they
logged. The shared PostgreSQL server is never stopped: only this test's connections are cut."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from collaboration.models import Trip, TripEvent
from collaboration.services.members import trip_member_set
from metrics.models import ConnectionSession
from protocol import CloseCode
from tests import factories
from tests.conftest import DaphneServer
from tests.wsclient import closed_with, connect, open_socket, send_json

pytestmark = pytest.mark.django_db(transaction=True)

APPLICATION_NAME = "tripsage-chaos-pg"  # how the test tells the processes' connections apart
REPLY_TIMEOUT = 10.0  # no answer may take longer (the database's connect timeout is 5 s)
RETRY_PAUSE = 0.1  # a client's pause before it retries a retryable error

# What a process logs with a traceback when the database is away: a socket message, a socket's
# opening, the metrics flush, a REST request. Any other traceback is a fault nobody handled.
LOGGED_FAULTS = (
    "handler failed on",
    "opening a ",
    "writing connection metrics failed",
    "REST request failed",
    "Internal Server Error: /api/",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgProxy:
    """A TCP forwarder to PostgreSQL, on a loop of its own. `cut()` resets every connection
    through it and refuses new ones (what clients of a restarting server see); `silence()`
    resets them and accepts new ones that are never answered (a host that stopped answering);
    `restore()` forwards again. A network fault of the test's own: the server is untouched."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = _free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.BaseTransport] = set()
        self.forwarding = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.restore()

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def cut(self) -> None:
        async def cut() -> None:
            self.forwarding = False
            if self.server is not None:
                self.server.close()  # new connections are refused from here on
                self.server = None
            for transport in list(self.pipes):
                transport.abort()
            self.pipes.clear()

        self._run(cut())

    def _listen(self, handler: Callable[..., Awaitable[None]], forwarding: bool) -> None:
        self.cut()

        async def listen() -> None:
            self.server = await asyncio.start_server(handler, "127.0.0.1", self.port)
            self.forwarding = forwarding

        self._run(listen())

    def restore(self) -> None:
        self._listen(self._pipe, forwarding=True)

    def silence(self) -> None:
        self._listen(self._swallow, forwarding=False)

    def stop(self) -> None:
        self.cut()

        async def finish() -> None:  # every connection was aborted: their tasks end
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            if tasks:
                await asyncio.wait(tasks, timeout=5)

        self._run(finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pipes.add(writer.transport)
        while await reader.read(65536):
            pass

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        ends = (writer.transport, up_writer.transport)
        if not self.forwarding:  # cut while connecting upstream
            for end in ends:
                end.abort()
            return
        self.pipes.update(ends)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.pipes.difference_update(ends)


@pytest.fixture
def pg_proxy() -> Iterator[PgProxy]:
    settings = connection.settings_dict
    proxy = PgProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    yield proxy
    proxy.stop()


@pytest.fixture
def pg_processes(
    transactional_db: None, start_process: Callable[..., DaphneServer], pg_proxy: PgProxy
) -> tuple[DaphneServer, DaphneServer]:
    """Two daphne processes on the test's Redis whose database connections go through the
    proxy, named by APPLICATION_NAME, with the shipped database settings and a fast metrics
    flush (so that flushes fail while the database is away)."""
    settings = connection.settings_dict
    credentials = quote(settings["USER"] or "")
    if settings["PASSWORD"]:
        credentials += ":" + quote(settings["PASSWORD"])
    url = (
        f"postgres://{credentials}@127.0.0.1:{pg_proxy.port}/{settings['NAME']}"
        f"?application_name={APPLICATION_NAME}"
    )
    fast_metrics = {"METRICS_FLUSH_SECONDS": "0.5", "METRICS_LIVE_REFRESH_SECONDS": "1"}
    return (
        start_process("pg-a", DATABASE_URL=url, **fast_metrics),
        start_process("pg-b", DATABASE_URL=url, **fast_metrics),
    )


def _terminate_process_connections() -> int:
    """pg_terminate_backend on every connection of the daphne processes (never this test's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s "
            "AND pid <> pg_backend_pid()",
            [APPLICATION_NAME],
        )
        return int(cursor.fetchone()[0])


terminate_process_connections = sync_to_async(_terminate_process_connections)


@pytest.fixture
def crew(transactional_db: None) -> tuple[Any, Any, Any, Any, Trip]:
    """alice owns the trip, bob and dave edit it, carol views it."""
    alice, bob, carol, trip = factories.make_crew()
    dave = factories.make_user("dave")
    trip_member_set(trip_id=trip.pk, actor=None, user=dave, role="editor")
    trip.refresh_from_db()
    return alice, bob, carol, dave, trip


# -- the clients ------------------------------------------------------------------------------


@dataclass
class Edit:
    """One edit, retried with the same idempotency key until it is acknowledged."""

    field: str
    value: str
    update_id: str
    ack: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


class SocketEditor:
    """A trip socket editing one field as the seed's client does: each edit waits for its
    answer; SERVER_ERROR with `retryable: true` is retried with the same `update_id`."""

    def __init__(self, name: str, ws: ClientConnection, field_name: str) -> None:
        self.name = name
        self.ws = ws
        self.field = field_name
        self.edits: list[Edit] = []
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        snapshot = ws.snapshot
        self.version = snapshot["trip"]["version"]
        self.seq = snapshot["seq"]
        self.fields = dict(snapshot["trip"]["fields"])
        self.events: list[dict[str, Any]] = []
        self.unexpected: list[dict[str, Any]] = []
        self.progress = asyncio.Event()  # set whenever a frame arrives or the socket closes
        self.reader = asyncio.create_task(self._read())

    async def until(self, done: Callable[[], bool], timeout: float = REPLY_TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.progress.clear()
                await self.progress.wait()

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                kind = message["type"]
                if kind == "ping":
                    await send_json(self.ws, {"type": "pong", "request_id": message["id"]})
                elif message.get("request_id") in self.waiting:
                    self.waiting.pop(message["request_id"]).set_result(message)
                elif kind == "trip.updated":
                    self.events.append(message)
                    self.seq = max(self.seq, message["seq"])
                    self.version = max(self.version, message["version"])
                    self.fields[message["field"]] = message["value"]
                elif kind == "error":
                    self.unexpected.append(message)
                self.progress.set()
        except ConnectionClosed:
            pass
        finally:
            self.progress.set()

    async def edit(self, value: str) -> Edit:
        edit = Edit(self.field, value, str(uuid.uuid4()))
        self.edits.append(edit)
        base_version = self.version  # a retry is the same change: the same message
        for attempt in range(1, 1000):
            request_id = f"{self.name}-{len(self.edits)}-{attempt}"
            answer = asyncio.get_running_loop().create_future()
            self.waiting[request_id] = answer
            await send_json(
                self.ws,
                {
                    "type": "trip.update",
                    "id": request_id,
                    "update_id": edit.update_id,
                    "field": self.field,
                    "value": value,
                    "base_version": base_version,
                },
            )
            # Never a hang: every message is answered within the timeouts.
            reply = await asyncio.wait_for(answer, REPLY_TIMEOUT)
            if reply["type"] == "ack":
                edit.ack = reply
                self.version = max(self.version, reply["version"])
                self.fields[self.field] = reply["value"]
                return edit
            assert reply["type"] == "error", reply
            assert reply["error"]["code"] == "SERVER_ERROR", reply
            assert reply["error"]["details"]["retryable"] is True, reply
            edit.errors.append(reply)
            await asyncio.sleep(RETRY_PAUSE)
        raise AssertionError(f"{self.name}: {value} never acknowledged")

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


class RestEditor:
    """dave, editing `notes` with PATCH (If-Match, Idempotency-Key) on both processes in turn;
    a 5xx is retried with the same key."""

    def __init__(self, servers: tuple[DaphneServer, ...], token: str, trip_id: int) -> None:
        self.servers = servers
        self.token = token
        self.trip_id = trip_id
        self.version = 1
        self.edits: list[Edit] = []
        self.failures: list[tuple[int, Any]] = []

    def _request(
        self, server: DaphneServer, method: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{server.http_url}/api/trips/{self.trip_id}/",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                **headers,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=REPLY_TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text

    async def get(self, server: DaphneServer) -> tuple[int, Any]:
        return await asyncio.to_thread(self._request, server, "GET")

    async def edit(self, value: str) -> Edit:
        edit = Edit("notes", value, uuid.uuid4().hex)  # the Idempotency-Key
        self.edits.append(edit)
        if_match = f'"{self.version}"'  # a retry is the same change: the same request
        for attempt in range(1000):
            server = self.servers[(len(self.edits) + attempt) % len(self.servers)]
            status, body = await asyncio.to_thread(
                self._request,
                server,
                "PATCH",
                {"notes": value},
                **{"If-Match": if_match, "Idempotency-Key": edit.update_id},
            )
            if status == 200:
                edit.ack = body["results"][0]
                self.version = body["version"]
                return edit
            # While the database is away: a 5xx (its body: test_rest_while_the_database_...).
            assert status >= 500, (status, body)
            edit.errors.append(body)
            await asyncio.sleep(RETRY_PAUSE)
        raise AssertionError(f"dave: {value} never acknowledged")


async def edit_until(editor: SocketEditor | RestEditor, stop: asyncio.Event, tag: str) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        await editor.edit(f"{tag} {n}")
        await asyncio.sleep(0.02)


async def under_load(
    servers: tuple[DaphneServer, DaphneServer], crew: Any, fault: Callable[[], Awaitable[None]]
) -> tuple[list[SocketEditor], RestEditor]:
    """alice edits `name` on process a, bob `destination` on process b, dave `notes` over REST
    on both, while `fault` runs; then each finishes its edit in progress."""
    alice, bob, _carol, dave, trip = crew
    path = f"/ws/trips/{trip.pk}/"
    ws_a, _ = await connect(servers[0].ws_url, path, factories.access_token(alice))
    ws_b, _ = await connect(servers[1].ws_url, path, factories.access_token(bob))
    editors = [SocketEditor("alice", ws_a, "name"), SocketEditor("bob", ws_b, "destination")]
    rest = RestEditor(servers, factories.access_token(dave), trip.pk)
    stop = asyncio.Event()
    loops = [asyncio.create_task(edit_until(e, stop, e.name)) for e in editors]
    loops.append(asyncio.create_task(edit_until(rest, stop, "dave")))
    try:
        await asyncio.sleep(0.5)
        await fault()
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return editors, rest


# -- what users must see afterwards ----------------------------------------------------------


async def assert_nothing_acknowledged_is_lost(
    editors: list[SocketEditor | RestEditor], trip_id: int
) -> None:
    """Every edit was acknowledged as applied (first time, or as the duplicate of an applied
    first attempt whose answer was lost), is in the event log once at the acknowledged `seq`,
    and the database holds each editor's last value."""

    def read() -> tuple[Trip, dict[str, list[tuple[int, Any]]]]:
        logged: dict[str, list[tuple[int, Any]]] = {}
        for event in TripEvent.objects.filter(trip_id=trip_id, type="trip.updated"):
            logged.setdefault(event.message["update_id"], []).append(
                (event.seq, event.message["value"])
            )
        return Trip.objects.get(pk=trip_id), logged

    trip, logged = await sync_to_async(read)()
    for editor in editors:
        assert editor.edits, "no edit was made"
        for edit in editor.edits:
            ack = edit.ack
            assert ack is not None
            assert ack["status"] in ("applied", "duplicate"), ack
            assert ack["original_status"] == "applied", ack
            update_id = (
                edit.update_id
                if isinstance(editor, SocketEditor)
                else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{edit.update_id}/notes"))
            )
            assert logged.get(update_id) == [(ack["seq"], edit.value)], (
                edit,
                logged.get(update_id),
            )
        assert getattr(trip, editor.edits[-1].field) == editor.edits[-1].value


async def assert_sockets_converge(editors: list[SocketEditor], trip_id: int) -> None:
    """Each open socket shows the database's fields and `seq`, with no event twice."""
    trip = await sync_to_async(Trip.objects.get)(pk=trip_id)
    for editor in editors:
        with contextlib.suppress(TimeoutError):
            await editor.until(lambda editor=editor: editor.seq >= trip.seq)
    for editor in editors:
        assert editor.ws.close_code is None, (
            f"{editor.name}'s socket closed: {editor.ws.close_code}"
        )
        assert editor.seq == trip.seq, editor.name
        for name in ("name", "destination", "notes"):
            assert editor.fields[name] == getattr(trip, name), (editor.name, name)
        seqs = [event["seq"] for event in editor.events]
        assert len(seqs) == len(set(seqs)), f"{editor.name} was sent an event twice"
        assert editor.unexpected == [], editor.unexpected


async def assert_served_as_before(
    servers: tuple[DaphneServer, DaphneServer],
    crew: Any,
    editors: list[SocketEditor],
    rest: RestEditor,
) -> None:
    """The database is back: the same processes (still running, never restarted) serve a new
    socket of each connection type, edits on the open sockets and REST requests, each on the
    first try."""
    alice, *_rest, trip = crew
    token = factories.access_token(alice)
    for server in servers:
        assert server.process.poll() is None, "a process exited"
        for path in (f"/ws/trips/{trip.pk}/", f"/ws/chat/{trip.pk}/", "/ws/notifications/"):
            ws, _ = await connect(server.ws_url, path, token)
            await ws.close()
        status, body = await rest.get(server)
        assert status == 200, (status, body)
    for editor in editors:
        edit = await editor.edit(f"{editor.name} after")
        assert edit.errors == [], f"{editor.name}: {edit.errors[0]}"
    edit = await rest.edit("dave after")
    assert edit.errors == [], edit.errors[0]


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")  # LOGGING's format


def assert_no_unhandled_traceback(servers: tuple[DaphneServer, DaphneServer]) -> None:
    """Each traceback in the processes' logs belongs to a record of a fault the code caught and
    logged (LOGGED_FAULTS); nothing raised where nobody handles it."""
    for server in servers:
        log = server.log()
        record = ""
        for line in log.splitlines():
            if LOG_RECORD.match(line):
                record = line
            elif line.startswith("Traceback"):
                assert any(fault in record for fault in LOGGED_FAULTS), (
                    f"a traceback after {record!r}:\n{log[-8000:]}"
                )
        for marker in ("Exception inside application", "never retrieved"):
            assert marker not in log, f"{marker!r} in the log:\n{log[-8000:]}"


# -- the faults -------------------------------------------------------------------------------


async def test_connections_terminated_under_load_cost_retryable_errors_only_and_heal_by_themselves(
    pg_processes: tuple[DaphneServer, DaphneServer], crew: Any
) -> None:
    """Every connection of both processes terminated ten times while the three edit, then once
    more when nobody is editing: the next socket, edit and REST request must not find a dead
    connection."""
    terminated: list[int] = []

    async def terminate_repeatedly() -> None:
        for _ in range(10):
            terminated.append(await terminate_process_connections())
            await asyncio.sleep(0.3)

    editors, rest = await under_load(pg_processes, crew, terminate_repeatedly)
    assert sum(terminated) > 0, "no connection of the processes was found to terminate"
    trip_id = crew[-1].pk
    await assert_nothing_acknowledged_is_lost([*editors, rest], trip_id)
    await assert_sockets_converge(editors, trip_id)

    # Every persistent connection dies while the processes are idle, as in a restart at night.
    await asyncio.sleep(1)
    assert await terminate_process_connections() > 0
    await asyncio.sleep(0.5)
    await assert_served_as_before(pg_processes, crew, editors, rest)
    await assert_nothing_acknowledged_is_lost([*editors, rest], trip_id)
    await assert_sockets_converge(editors, trip_id)
    for editor in editors:
        await editor.close()
    assert_no_unhandled_traceback(pg_processes)


async def test_database_away_for_seconds_answers_retryable_errors_and_the_processes_serve_again(
    pg_processes: tuple[DaphneServer, DaphneServer], pg_proxy: PgProxy, crew: Any
) -> None:
    """The network to PostgreSQL cut for eight seconds (every connection reset, new ones
    refused) while the three edit: edits get SERVER_ERROR (retryable) meanwhile; then everything
    is served again. The metrics come through too: the session of a socket that closed meanwhile
    is ended, and the open sockets' sessions are not taken for a lost process's, although every
    process's last snapshot is older than the live window (6.5 s with a 0.5 s flush)."""
    _alice, _bob, carol, _dave, trip = crew
    a, _b = pg_processes
    leaving, _ = await connect(a.ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(carol))
    await asyncio.sleep(1.2)  # a flush writes its metrics row

    async def cut_for_eight_seconds() -> None:
        await asyncio.to_thread(pg_proxy.cut)
        await asyncio.sleep(0.5)
        await leaving.close()
        await asyncio.sleep(7.5)
        await asyncio.to_thread(pg_proxy.restore)

    editors, rest = await under_load(pg_processes, crew, cut_for_eight_seconds)

    for editor in [*editors, rest]:
        assert any(edit.errors for edit in editor.edits), "no edit met the outage"
    await assert_nothing_acknowledged_is_lost([*editors, rest], trip.pk)
    await assert_sockets_converge(editors, trip.pk)
    await assert_served_as_before(pg_processes, crew, editors, rest)
    await assert_sockets_converge(editors, trip.pk)

    # The socket that closed while the database was away: its session row is ended after all.
    def ended() -> ConnectionSession | None:
        return ConnectionSession.objects.filter(
            user__username="carol", ended_at__isnull=False
        ).first()

    deadline = time.monotonic() + 10
    row = await sync_to_async(ended)()
    while row is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        row = await sync_to_async(ended)()
    assert row is not None, "the session of the socket closed during the outage never ended"
    assert row.close_code == 1000 and row.end_reason == "client_closed"
    await asyncio.sleep(7)  # past the live window: a wrong "process_lost" would have happened

    def still_open(username: str) -> bool:
        sessions = ConnectionSession.objects.filter(user__username=username, trip_id=trip.pk)
        return sessions.filter(ended_at__isnull=True).exists()

    for editor in editors:
        assert await sync_to_async(still_open)(editor.name), f"{editor.name}'s session ended"
    for editor in editors:
        await editor.close()
    assert_no_unhandled_traceback(pg_processes)


async def test_a_database_host_that_stops_answering_costs_a_retryable_error_not_a_hang(
    pg_processes: tuple[DaphneServer, DaphneServer], pg_proxy: PgProxy, crew: Any
) -> None:
    """Every connection reset and new ones accepted but never answered (a partition, a hung
    server): an edit is answered SERVER_ERROR (retryable) once the connect timeout
    (DATABASE_CONNECT_TIMEOUT_SECONDS, 5 s) passes, within REPLY_TIMEOUT, not after psycopg's
    130 s; once the host answers again the retried edit is acknowledged."""
    alice, *_rest, trip = crew
    ws, _ = await connect(
        pg_processes[0].ws_url, f"/ws/trips/{trip.pk}/", factories.access_token(alice)
    )
    editor = SocketEditor("alice", ws, "name")
    await editor.edit("before")
    await asyncio.to_thread(pg_proxy.silence)
    editing = asyncio.create_task(editor.edit("while silent"))
    # Answered, not hanging: past REPLY_TIMEOUT the edit raises, and so does this wait.
    await editor.until(
        lambda: editor.edits[-1].value == "while silent" and editor.edits[-1].errors != [],
        REPLY_TIMEOUT + 1,
    )
    await asyncio.to_thread(pg_proxy.restore)
    edit = await editing
    assert edit.ack is not None
    await assert_nothing_acknowledged_is_lost([editor], trip.pk)
    await editor.close()
    assert_no_unhandled_traceback(pg_processes)


async def test_a_socket_opened_while_the_database_is_away_gets_a_retryable_server_error(
    pg_processes: tuple[DaphneServer, DaphneServer], pg_proxy: PgProxy, crew: Any
) -> None:
    """The user lookup at connect (realtime/auth.py) cannot reach the database: the client is
    told SERVER_ERROR (retryable) and the socket closes with 4011, as docs/protocol.md says for a
    fault of ours while opening; once the database is back the same client connects."""
    _alice, bob, _carol, _dave, trip = crew
    path = f"/ws/trips/{trip.pk}/"
    await asyncio.to_thread(pg_proxy.cut)
    for server in pg_processes:
        ws = await open_socket(server.ws_url, path)
        await send_json(ws, {"token": factories.access_token(bob), "id": "during"})
        code, messages = await closed_with(ws, REPLY_TIMEOUT)
        errors = [m for m in messages if m["type"] == "error"]
        assert [e["error"]["code"] for e in errors] == ["SERVER_ERROR"], (code, messages)
        assert errors[0]["error"]["details"]["retryable"] is True
        assert errors[0]["request_id"] == "during"
        assert code == CloseCode.SERVER_FAULT  # docs/protocol.md: a fault of ours while opening
    await asyncio.to_thread(pg_proxy.restore)
    for server in pg_processes:
        ws, _ = await connect(server.ws_url, path, factories.access_token(bob))
        await ws.close()
    assert_no_unhandled_traceback(pg_processes)


async def test_rest_while_the_database_is_away_answers_503_in_the_envelope_with_retryable(
    pg_processes: tuple[DaphneServer, DaphneServer], pg_proxy: PgProxy, crew: Any
) -> None:
    """docs/protocol.md: REST answers 5xx in the seed's envelope with SERVER_ERROR; a database
    that does not answer is the service being unavailable (503, Retry-After) and worth a
    retry, like the socket's SERVER_ERROR with `retryable: true`."""
    _alice, _bob, _carol, dave, trip = crew
    rest = RestEditor(pg_processes, factories.access_token(dave), trip.pk)
    await asyncio.to_thread(pg_proxy.cut)
    for server in pg_processes:
        status, body = await rest.get(server)
        assert status == 503, (status, body)
        assert isinstance(body, dict), body
        assert body["error"]["code"] == "SERVER_ERROR"
        assert body["error"]["details"]["retryable"] is True
    await asyncio.to_thread(pg_proxy.restore)
    for server in pg_processes:
        status, body = await rest.get(server)
        assert status == 200, (status, body)
    assert_no_unhandled_traceback(pg_processes)
