"""Load generator processes: receivers, open-loop senders, connect storms, closed-loop editors,
and trip members that reconnect and resume as the browser client does (S7).

Each runs in its own process with its own event loop and talks to the harness over a Pipe.
Senders stamp every edit with its *intended* send time (wall clock, shared by processes on one
machine), so a slow server shows as latency, not as a slower sender.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import threading
import time
import uuid
from array import array
from collections import Counter, deque
from multiprocessing.connection import Connection
from typing import Any

from bench import fastws


def _open_files() -> None:
    """The harness raised RLIMIT_NOFILE and this process inherited it; raise it again in case
    this process was started some other way (C10k holds thousands of sockets per process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _seq(payload: bytes) -> int | None:
    """The first `"seq":N` of a compact JSON frame (protocol.encode), without parsing it."""
    start = payload.find(b'"seq":')
    if start < 0:
        return None
    start += 6
    end = start
    while end < len(payload) and 48 <= payload[end] <= 57:
        end += 1
    return int(payload[start:end]) if end > start else None


def _commands(conn: Connection, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Any]:
    """Pipe commands from the harness, delivered into the loop by a reader thread."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def reader() -> None:
        while True:
            try:
                item = conn.recv()
            except EOFError:
                item = ("close",)
            loop.call_soon_threadsafe(queue.put_nowait, item)
            if item[0] == "close":
                return

    threading.Thread(target=reader, daemon=True).start()
    return queue


def _pong(ws: fastws.FastWebSocket, payload: bytes) -> None:
    ws.send_text(json.dumps({"type": "pong", "request_id": json.loads(payload)["id"]}))


class Refused(RuntimeError):
    """The server answered the connect with an error envelope (and closes the socket)."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload[:300].decode(errors="replace"))
        try:
            details = json.loads(payload).get("error", {}).get("details") or {}
        except ValueError:
            details = {}
        hint = details.get("retry_after")
        self.reason = str(details.get("reason") or "")
        self.retry_after = float(hint) if isinstance(hint, int | float) and hint > 0 else None


async def _open(
    target: tuple[str, int], path: str, token: str, on_text: Any
) -> fastws.FastWebSocket:
    """Connect and authenticate; resolves once the server's snapshot (or equivalent) arrived."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def handler(ws: fastws.FastWebSocket, payload: bytes) -> None:
        if not ready.done() and b"trip.snapshot" in payload:
            ready.set_result(None)
            return
        if not ready.done() and b'"type":"error"' in payload:
            ready.set_exception(Refused(payload))
            return
        on_text(ws, payload)

    ws = await fastws.connect(target[0], target[1], path, handler)
    ws.send_text(json.dumps({"token": token}))
    try:
        await asyncio.wait_for(ready, 60)
    except BaseException:
        ws.close()
        raise
    return ws


# A connect refused with a hint (admission control: `overloaded`, close 4013) is tried again
# after retry_after x (1 + random()), as the browser client does, at most this many times.
REFUSED_RETRIES = 20


async def _open_many(
    targets: list[tuple[str, int]], path: str, tokens: list[str], on_text: Any, concurrency: int
) -> tuple[list[fastws.FastWebSocket], list[str]]:
    """Open every socket, `concurrency` at a time; a refusal with a hint is tried again (the
    slot is held meanwhile). Returns the sockets and the connects that failed for good."""
    limit = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(i: int, token: str) -> fastws.FastWebSocket | None:
        async with limit:
            for _ in range(REFUSED_RETRIES):
                try:
                    return await _open(targets[i % len(targets)], path, token, on_text)
                except Refused as exc:
                    if exc.retry_after is None:
                        errors.append(repr(exc)[:200])
                        return None
                    REFUSALS[exc.reason] += 1
                    await asyncio.sleep(exc.retry_after * (1 + random.random()))
                except Exception as exc:  # reported, not raised: a failed connect is a result
                    errors.append(repr(exc)[:200])
                    return None
            errors.append(f"refused {REFUSED_RETRIES} times")
            return None

    sockets = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return [s for s in sockets if s is not None], errors


REFUSALS: Counter[str] = Counter()  # refusals with a hint this process met, by reason


# -- receivers ---------------------------------------------------------------------------------


def receivers(conn: Connection, spec: dict[str, Any]) -> None:
    _open_files()
    asyncio.run(_receivers(conn, spec))


async def _receivers(conn: Connection, spec: dict[str, Any]) -> None:
    commands = _commands(conn, asyncio.get_running_loop())
    latencies = array("d")
    close_codes: Counter[int] = Counter()
    pings = [0]  # the service's heartbeat pings answered

    def on_text(ws: fastws.FastWebSocket, payload: bytes) -> None:
        if b"trip.updated" in payload:
            start = payload.find(b'"s:')
            if start >= 0:
                end = payload.find(b":", start + 3)
                latencies.append((time.time() - float(payload[start + 3 : end])) * 1000)
        elif b'"type":"ping"' in payload:
            pings[0] += 1
            _pong(ws, payload)

    sockets, errors = await _open_many(
        spec["targets"], spec["path"], spec["tokens"], on_text, spec.get("concurrency", 50)
    )
    conn.send(("ready", len(sockets), errors, sum(REFUSALS.values())))
    while True:
        command = await commands.get()
        if command[0] == "reset":
            del latencies[:]
        elif command[0] == "count":
            conn.send(("count", len(latencies)))
        elif command[0] == "pings":
            open_ = sum(1 for ws in sockets if not ws.closed.done())
            conn.send(("pings", pings[0], fastws.FastWebSocket.protocol_pings, open_))
        elif command[0] == "collect":
            for ws in sockets:
                if ws.closed.done():
                    close_codes[ws.closed.result()] += 1
            conn.send(("result", latencies.tobytes(), dict(close_codes)))
        elif command[0] == "close":
            for ws in sockets:
                ws.close()
            await asyncio.sleep(0.2)
            return


# -- open-loop senders -------------------------------------------------------------------------


def senders(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_senders(conn, spec))


async def _senders(conn: Connection, spec: dict[str, Any]) -> None:
    """`("send", rate, duration)` sends and answers when done; `("stream", rate)` sends until
    `("stop",)`, which answers `("sent", count, last acked seq)`; `("status",)` answers the
    same while streaming."""
    commands = _commands(conn, asyncio.get_running_loop())
    outcome: Counter[str] = Counter()
    last_seq = [0]  # highest seq acked: the newest edit the trip's log holds

    def on_text(ws: fastws.FastWebSocket, payload: bytes) -> None:
        if b'"type":"ack"' in payload or b'"type": "ack"' in payload:
            outcome["applied" if b"applied" in payload else "refused"] += 1
            seq = _seq(payload)
            if seq is not None and seq > last_seq[0]:
                last_seq[0] = seq
        elif b'"type":"error"' in payload:
            outcome["error"] += 1
        elif b'"type":"ping"' in payload:
            _pong(ws, payload)

    sockets, errors = await _open_many(spec["targets"], spec["path"], spec["tokens"], on_text, 10)
    conn.send(("ready", len(sockets), errors, sum(REFUSALS.values())))
    stopping = asyncio.Event()

    async def send_loop(rate: float, duration: float | None) -> int:
        if not sockets:
            return 0
        count = int(rate * duration) if duration is not None else None
        start = time.time() + 0.2
        i = 0
        while count is None or i < count:
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                if count is None:
                    try:
                        await asyncio.wait_for(stopping.wait(), delay)
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(delay)
            if stopping.is_set():
                break
            which = i % len(sockets)
            sockets[which].send_text(
                json.dumps(
                    {
                        "type": "trip.update",
                        "update_id": str(uuid.uuid4()),
                        "field": spec["fields"][which],
                        "value": f"s:{due:.6f}:{i}",
                        "base_version": 1,
                    }
                )
            )
            outcome["sent"] += 1
            i += 1
        return i

    streaming: asyncio.Task[int] | None = None
    while True:
        command = await commands.get()
        if command[0] == "send":
            _, rate, duration = command
            conn.send(("sent", await send_loop(rate, duration)))
        elif command[0] == "stream":
            stopping.clear()
            streaming = asyncio.create_task(send_loop(command[1], None))
        elif command[0] == "status":
            conn.send(("status", outcome["sent"], last_seq[0]))
        elif command[0] == "stop":
            stopping.set()
            sent = await streaming if streaming is not None else 0
            answered = ("applied", "refused", "error")
            for _ in range(300):  # the last acks, for at most 15 s
                if sum(outcome[k] for k in answered) >= outcome["sent"]:
                    break
                await asyncio.sleep(0.05)
            conn.send(("sent", sent, last_seq[0]))
        elif command[0] == "collect":
            conn.send(("result", dict(outcome)))
            outcome.clear()
        elif command[0] == "close":
            for ws in sockets:
                ws.close()
            return


# -- connect storm -----------------------------------------------------------------------------


def storm(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_storm(conn, spec))


async def _storm(conn: Connection, spec: dict[str, Any]) -> None:
    commands = _commands(conn, asyncio.get_running_loop())
    conn.send(("ready", 0, []))
    await commands.get()  # go
    started = time.time()
    sockets, errors = await _open_many(
        spec["targets"], spec["path"], spec["tokens"], lambda ws, p: None, spec["concurrency"]
    )
    finished = time.time()
    conn.send(("result", started, finished, len(sockets), errors, sum(REFUSALS.values())))
    await commands.get()  # close
    for ws in sockets:
        ws.close()
    await asyncio.sleep(0.2)


# -- closed-loop editors (persisted edits per second) ------------------------------------------


def editors(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_editors(conn, spec))


async def _editors(conn: Connection, spec: dict[str, Any]) -> None:
    commands = _commands(conn, asyncio.get_running_loop())
    acks: dict[fastws.FastWebSocket, asyncio.Future[bool]] = {}

    def on_text(ws: fastws.FastWebSocket, payload: bytes) -> None:
        waiting = acks.get(ws)
        if waiting is not None and not waiting.done() and b'"type":"ack"' in payload:
            waiting.set_result(b'"applied"' in payload)
        elif b'"type":"ping"' in payload:
            _pong(ws, payload)

    sockets = []
    for path, token in zip(spec["paths"], spec["tokens"], strict=True):
        sockets.append(await _open(spec["targets"][0], path, token, on_text))
    conn.send(("ready", len(sockets), []))
    _, duration = await commands.get()
    deadline = time.time() + duration
    applied = 0

    async def edit_loop(ws: fastws.FastWebSocket) -> None:
        nonlocal applied
        i = 0
        while time.time() < deadline:
            acks[ws] = asyncio.get_running_loop().create_future()
            ws.send_text(
                json.dumps(
                    {
                        "type": "trip.update",
                        "update_id": str(uuid.uuid4()),
                        "field": "notes",
                        "value": f"edit {i}",
                        "base_version": 1,
                    }
                )
            )
            if await asyncio.wait_for(acks[ws], 30):
                applied += 1
            i += 1

    await asyncio.gather(*(edit_loop(ws) for ws in sockets))
    conn.send(("result", applied))
    await commands.get()
    for ws in sockets:
        ws.close()


# -- members that reconnect and resume (S7) ----------------------------------------------------
# The browser client's policy (clients/js/websocket-connection.js, _scheduleReconnect): after a
# drop, attempt n waits random() x min(30 s, 1 s x 2^(n-1)) ("full jitter"); a refusal that carries
# `details.retry_after` (seconds) waits at least retry_after x (1 + random()) (a 4029's hint: at
# least retry_after itself). Attempts count from 1 again once a socket is established, and in the
# same turn the client sends `resume` with the highest `seq` it has seen. Each member checks its
# stream by `seq`: every logged event once, none missing.

RECONNECT_BASE = 1.0  # seconds: the client's reconnectDelay
RECONNECT_CEILING = 30.0  # seconds: the client's maxReconnectDelay
RATE_LIMITED = 4029  # protocol.CloseCode.RATE_LIMITED: its hint is not jittered
ESTABLISH_TIMEOUT = 30.0  # a browser has none; a hung handshake must end somewhere here
EVENT_TYPES = (b'"type":"trip.updated"', b'"type":"conflict.', b'"type":"member.')


def reconnect_delay(
    attempt: int, retry_after: float | None, rand: Any = random.random, code: int | None = None
) -> float:
    """Seconds before reconnect attempt `attempt` (1, 2, ...): the browser client's policy."""
    delay = rand() * min(RECONNECT_CEILING, RECONNECT_BASE * 2 ** (attempt - 1))
    if retry_after is not None and retry_after > 0:
        wait = retry_after if code == RATE_LIMITED else retry_after * (1 + rand())
        delay = max(delay, wait)
    return delay


class _Member:
    """One member's socket and its record of the trip's event stream."""

    def __init__(self, owner: _Members, index: int, token: str) -> None:
        self.owner = owner
        self.index = index
        self.token = token
        self.ws: fastws.FastWebSocket | None = None
        self.state = "new"  # new, live, resuming, down, failed
        self.established: asyncio.Future[None] | None = None
        self.snapshot: asyncio.Future[int] | None = None
        self.retry_after: float | None = None
        self.refusal: str | None = None  # the reason of a refusal before `connection.established`
        self.close_code: int | None = None
        self.base = 0  # the seq of the first snapshot: events after it are checked
        self.seen = bytearray()  # seen[i]: times seq base+1+i arrived
        self.max_seq = 0
        self.contiguous = 0  # every seq up to this one arrived
        self.duplicates = 0
        # Events that arrived after a later one (the protocol forbids it): on a live socket, and
        # while resuming (a live event before the replay it should follow).
        self.reordered = 0
        self.reordered_resuming = 0
        self.replayed = 0
        self.resyncs = 0
        self.resynced = 0  # seqs skipped by a resync.required (a snapshot instead of events)
        self.attempts = 0  # connect attempts after the first connect
        self.refusals: Counter[str] = Counter()
        # The current outage: [down_at, established_at, back_at, caught_at]; closed ones below.
        self.outage: list[float | None] | None = None
        self.outages: list[list[float | None]] = []
        self.resume_snapshot = 0
        self.resume_pending = False  # send `resume` when this socket is established
        self.history: list[str] = []  # what happened on each reconnect, for a member that failed
        self.sockets = 0  # sockets opened so far: which one an event came on
        self.recent: deque[str] = deque(maxlen=8)  # the last events: time, seq, socket, state

    # -- the stream -----------------------------------------------------------------------------

    def on_text(self, ws: fastws.FastWebSocket, payload: bytes) -> None:
        if ws is not self.ws:
            if self.ws is not None:
                return  # a socket this member already left
            # The socket being opened: a refusal can arrive with the handshake's response, before
            # fastws.connect returns it (and with it the hint to honour).
            self.ws = ws
        if b'"type":"ping"' in payload:
            _pong(ws, payload)
            return
        for marker in EVENT_TYPES:
            if marker in payload:
                self._event(payload)
                return
        if b'"type":"connection.established"' in payload:
            if self.resume_pending:
                # As the browser client does, in the same turn as `connection.established`: the
                # frames after it in this read (the snapshot, live events) must not move
                # `last_seq` past what this member had before the socket opened.
                self.resume_pending = False
                self.state = "resuming"
                ws.send_text(json.dumps({"type": "resume", "last_seq": self.max_seq}))
                self.history.append(
                    f"{time.time():.3f} established, resume last_seq={self.max_seq} "
                    f"contiguous={self.contiguous}"
                )
            if self.established is not None and not self.established.done():
                self.established.set_result(None)
        elif b'"type":"trip.snapshot"' in payload:
            seq = int(json.loads(payload)["seq"])
            if self.state == "new":  # the first socket: events after this one are checked
                self.base = self.max_seq = self.contiguous = seq
                self.state = "live"
            if self.snapshot is not None and not self.snapshot.done():
                self.snapshot.set_result(seq)
            self.resume_snapshot = seq
        elif b'"type":"resume.complete"' in payload:
            message = json.loads(payload)
            self.replayed += int(message.get("replayed") or 0)
            self.history.append(
                f"{time.time():.3f} resume.complete last_seq={message.get('last_seq')} "
                f"replayed={message.get('replayed')} seq={message.get('seq')} "
                f"snapshot={self.resume_snapshot} contiguous={self.contiguous} max={self.max_seq}"
            )
            self._back()
        elif b'"type":"resync.required"' in payload:
            message = json.loads(payload)
            seq = int(message["snapshot"]["seq"])
            self.resyncs += 1
            for s in range(self.contiguous + 1, seq + 1):  # the snapshot stands for these
                i = s - self.base - 1
                self._grow(i)
                if not self.seen[i]:
                    self.seen[i] = 1
                    self.resynced += 1
            self.max_seq = max(self.max_seq, seq)
            self._advance()
            self._back()
        elif b'"type":"error"' in payload:
            error = json.loads(payload).get("error") or {}
            details = error.get("details") or {}
            reason = str(details.get("reason") or error.get("code") or "error")
            if self.state not in ("live", "resuming"):
                self.refusal = reason
                retry_after = details.get("retry_after")
                if isinstance(retry_after, int | float):
                    self.retry_after = float(retry_after)

    def _grow(self, i: int) -> None:
        if i >= len(self.seen):
            self.seen.extend(bytes(max(i + 1 - len(self.seen), 256)))

    def _advance(self) -> None:
        i = self.contiguous - self.base
        seen = self.seen
        while i < len(seen) and seen[i]:
            i += 1
        self.contiguous = self.base + i

    def _event(self, payload: bytes) -> None:
        seq = _seq(payload)
        if seq is None:
            return
        now = time.time()
        self.recent.append(f"{now:.3f} seq {seq} on socket {self.sockets} ({self.state})")
        if seq <= self.base:
            self.duplicates += 1  # the first snapshot already held it
            return
        i = seq - self.base - 1
        self._grow(i)
        if self.seen[i]:
            self.duplicates += 1
            return
        self.seen[i] = 1
        if seq > self.max_seq:
            self.max_seq = seq
        else:
            if self.state == "live":
                self.reordered += 1
            else:
                self.reordered_resuming += 1
            if len(self.history) < 50:
                self.history.append(f"{now:.3f} seq {seq} after {self.max_seq} ({self.state})")
        if seq == self.contiguous + 1:
            self._advance()
        if self.state != "live":
            return
        start = payload.find(b'"s:')
        if start >= 0:
            end = payload.find(b":", start + 3)
            self.owner.record(now, (now - float(payload[start + 3 : end])) * 1000)
        self._caught(now)

    def _back(self) -> None:
        self.state = "live"
        if self.outage is not None and self.outage[2] is None:
            self.outage[2] = time.time()
        self._caught(time.time())

    def _caught(self, now: float) -> None:
        """Caught up: back, and every seq up to the newest it has seen (a live event or the
        reconnect's snapshot) arrived."""
        outage = self.outage
        if outage is None or outage[3] is not None or outage[2] is None:
            return
        if self.contiguous == self.max_seq and self.contiguous >= self.resume_snapshot:
            outage[3] = now
            self.outages.append(outage)
            self.outage = None

    # -- the socket -----------------------------------------------------------------------------

    async def connect(self, target: tuple[str, int], *, resume: bool) -> None:
        """Open, authenticate and (resume) send `resume`; raises when this attempt failed."""
        loop = asyncio.get_running_loop()
        self.established = loop.create_future()
        self.snapshot = loop.create_future()
        for waiting in (self.established, self.snapshot):  # a failure nobody awaits is no error
            waiting.add_done_callback(lambda done: done.cancelled() or done.exception())
        self.resume_pending = resume
        ws = await fastws.connect(target[0], target[1], self.owner.path, self.on_text)
        self.ws = ws
        self.sockets += 1
        ws.closed.add_done_callback(lambda done: self.on_closed(ws, done.result()))
        ws.send_text(json.dumps({"token": self.token}))
        try:
            await asyncio.wait_for(asyncio.shield(self.established), ESTABLISH_TIMEOUT)
        except TimeoutError:
            ws.close()
            raise
        if resume:
            self.history.append(f"{time.time():.3f} on port {target[1]}")
            return
        await asyncio.wait_for(asyncio.shield(self.snapshot), ESTABLISH_TIMEOUT)

    def on_closed(self, ws: fastws.FastWebSocket, code: int) -> None:
        if ws is not self.ws:
            return
        self.ws = None
        self.close_code = code
        for waiting in (self.established, self.snapshot):
            if waiting is not None and not waiting.done():
                waiting.set_exception(ConnectionError(f"closed with {code}"))
        if self.state in ("live", "resuming") and not self.owner.closing:
            self.state = "down"
            if self.outage is None:
                self.outage = [time.time(), None, None, None]
            self.owner.spawn(self.reconnect())

    async def reconnect(self) -> None:
        attempt = 0
        while not self.owner.closing:
            attempt += 1
            retry_after, self.retry_after = self.retry_after, None
            await asyncio.sleep(reconnect_delay(attempt, retry_after, code=self.close_code))
            if self.owner.closing:
                return
            self.attempts += 1
            self.refusal = self.close_code = None
            try:
                await self.connect(random.choice(self.owner.targets), resume=True)
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.refusals[self.refusal or _failure(exc)] += 1
                continue
            if self.outage is not None and self.outage[1] is None:
                self.outage[1] = time.time()
            return

    def missing_seqs(self, last_seq: int, limit: int = 20) -> list[int]:
        held = self.seen[: max(0, last_seq - self.base)]
        gaps = [self.base + 1 + i for i, v in enumerate(held) if not v][:limit]
        return gaps + list(range(self.base + 1 + len(held), last_seq + 1))[: limit - len(gaps)]

    def missing(self, last_seq: int) -> int:
        """How many seqs in (base, last_seq] never arrived."""
        wanted = last_seq - self.base
        if wanted <= 0:
            return 0
        held = self.seen[:wanted]
        return held.count(0) + max(0, wanted - len(held))

    def gaps(self) -> int:
        """Seqs that never arrived although a later one did: skipped, not just late."""
        return self.seen[: max(0, self.max_seq - self.base)].count(0)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc)
    if text.startswith("HTTP/"):
        return "http " + text.split(" ", 2)[1]
    if text.startswith("closed with"):
        return "close " + text.rsplit(" ", 1)[1]
    return type(exc).__name__


class _Members:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.path: str = spec["path"]
        self.targets: list[tuple[str, int]] = [tuple(t) for t in spec["targets"]]
        self.members = [_Member(self, i, t) for i, t in enumerate(spec["tokens"])]
        self.closing = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.received_at = array("d")  # live events: receipt time and latency (ms)
        self.latency = array("d")

    def record(self, at: float, latency: float) -> None:
        self.received_at.append(at)
        self.latency.append(latency)

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def status(self, last_seq: int = 0) -> dict[str, int]:
        counts: Counter[str] = Counter(m.state for m in self.members)
        counts["behind"] = sum(
            1 for m in self.members if m.state != "failed" and m.contiguous < last_seq
        )
        counts["caught_up"] = sum(1 for m in self.members if m.state == "live" and m.outage is None)
        counts["outages"] = sum(len(m.outages) + (m.outage is not None) for m in self.members)
        return dict(counts)

    def summary(self, last_seq: int) -> dict[str, Any]:
        live = [m for m in self.members if m.state != "failed"]
        refusals: Counter[str] = Counter()
        for m in live:
            refusals.update(m.refusals)
        return {
            "members": len(live),
            "failed": len(self.members) - len(live),
            "missing": sum(m.missing(last_seq) for m in live),
            "gaps": sum(m.gaps() for m in live),
            "members_missing": sum(1 for m in live if m.missing(last_seq)),
            "duplicates": sum(m.duplicates for m in live),
            "reordered": sum(m.reordered for m in live),
            "reordered_resuming": sum(m.reordered_resuming for m in live),
            "replayed": sum(m.replayed for m in live),
            "resyncs": sum(m.resyncs for m in live),
            "resynced": sum(m.resynced for m in live),
            "attempts": sum(m.attempts for m in live),
            "refusals": dict(refusals),
            "outages": [o for m in live for o in m.outages],
            "open_outages": [m.outage for m in live if m.outage is not None],
            "behind": sum(1 for m in live if m.max_seq < last_seq),
            # Members that lost events or never caught up: what happened to them.
            "faults": [
                {
                    "member": m.index,
                    "base": m.base,
                    "missing": m.missing_seqs(last_seq),
                    "contiguous": m.contiguous,
                    "max_seq": m.max_seq,
                    "history": m.history[-6:],
                    "recent": list(m.recent),
                }
                for m in live
                if m.missing(last_seq) or m.outage is not None or m.reordered
            ][:3],
        }


def members(conn: Connection, spec: dict[str, Any]) -> None:
    _open_files()
    asyncio.run(_members(conn, spec))


async def _members(conn: Connection, spec: dict[str, Any]) -> None:
    """Commands: ("targets", [...]) where reconnects go; ("status",); ("collect", last_seq)
    answers the stream check and the live events' receipt times and latencies; ("close",)."""
    commands = _commands(conn, asyncio.get_running_loop())
    group = _Members(spec)
    limit = asyncio.Semaphore(spec.get("concurrency", 25))
    errors: list[str] = []

    async def first(member: _Member) -> None:
        target = group.targets[member.index % len(group.targets)]
        async with limit:
            for _ in range(REFUSED_RETRIES):
                member.retry_after = None
                try:
                    await member.connect(target, resume=False)
                    return
                except Exception as exc:  # reported, not raised: a failed connect is a result
                    if member.retry_after is None:
                        member.state = "failed"
                        errors.append(repr(exc)[:200])
                        return
                    await asyncio.sleep(member.retry_after * (1 + random.random()))
            member.state = "failed"
            errors.append(f"refused {REFUSED_RETRIES} times")

    await asyncio.gather(*(first(m) for m in group.members))
    conn.send(("ready", sum(m.state == "live" for m in group.members), errors))
    while True:
        command = await commands.get()
        if command[0] == "targets":
            group.targets = [tuple(t) for t in command[1]]
        elif command[0] == "status":
            conn.send(("status", group.status(*command[1:])))
        elif command[0] == "collect":
            conn.send(
                (
                    "result",
                    group.summary(command[1]),
                    group.received_at.tobytes(),
                    group.latency.tobytes(),
                )
            )
        elif command[0] == "close":
            group.closing = True
            for m in group.members:
                if m.ws is not None:
                    m.ws.close()
            await asyncio.sleep(0.2)
            return
