"""Direct writes: a finished WebSocket frame written straight to a daphne connection's socket.

Under daphne, each ASGI `websocket.send` goes through daphne's reply coroutine, autobahn's framing
and Twisted's write buffer, which registers the socket with the event loop and writes it on the
loop's next turn: about three quarters of the server's CPU per delivered event in a fan-out
(docs/performance.md). For the frames this service sends, the outcome is always the same: one
unmasked, unfragmented, uncompressed text frame. So a fanned-out event is framed once per process
(`text_frame`) and written to each local socket with one `send()` system call, while the
connection's Twisted buffer is empty and autobahn is in its plain open state. Anything else (a
partial write, data still buffered, compression, a closing socket) falls back to what Twisted
and the ASGI send do, in order: nothing is reordered, nothing is lost.

Only daphne over plain TCP is recognised, and only with the versions of daphne, Twisted, autobahn
and txaio this was tested with (TESTED_VERSIONS, the pins of requirements.txt): `writer_for`
returns None under any other server, for TLS, for autobahn options it does not reproduce, when an
attribute it reads is missing, when REALTIME_DIRECT_WRITES is off, and for every connection of a
process with other versions installed (logged once). The callers then use the ASGI send as before;
tripsage_ws_direct_writes_disabled_total{reason} counts those connections.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import struct
from collections.abc import Callable
from functools import partial
from types import MethodType
from typing import Any, cast

from django.conf import settings

from metrics import instruments

logger = logging.getLogger(__name__)

Writer = Callable[[bytes], bool]

# Plain integers counted on the hot path: sent, partial, declined
# (tripsage_ws_direct_writes_total, declared in metrics.instruments).
counts = instruments.direct_write_counts

# The versions the writer was written and tested against, equal to requirements.txt's pins
# (tests/realtime/test_direct.py checks): it reads their private state, which any release may
# change without notice.
TESTED_VERSIONS = {
    "daphne": "4.2.3",
    "Twisted": "26.10.0",
    "autobahn": "26.10.2",
    "txaio": "26.6.1",
}

_TEXT_FIN = 0x81  # FIN + opcode 1 (text); server frames are never masked (RFC 6455, 5.1)


def text_frame(text: str) -> bytes:
    """One complete, unmasked text frame carrying `text`."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((_TEXT_FIN, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", _TEXT_FIN, 126, size) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, size) + payload


def event_frame(event: dict[str, Any]) -> bytes:
    """The frame of a fanned-out event's pre-encoded text, built once per process: the event
    dict is shared by every local member the layer offers it to."""
    frame = event.get("frame")
    if frame is None:
        frame = event["frame"] = text_frame(event["text"])
    return frame


def writer_for(send: Any) -> Writer | None:
    """A direct writer for the connection behind this ASGI `send` callable, or None."""
    writer = _writer_or_reason(send)
    if isinstance(writer, str):
        instruments.DIRECT_WRITES_DISABLED.labels(reason=writer).inc()
        return None
    return writer


def _writer_or_reason(send: Any) -> Writer | str:
    """The direct writer, or why there is none (the `reason` label of
    tripsage_ws_direct_writes_disabled_total)."""
    if not settings.REALTIME_DIRECT_WRITES:
        return "setting"
    try:
        from daphne.server import Server
        from twisted.internet.tcp import Connection
    except ImportError:  # not running under daphne
        return "server"
    if not (isinstance(send, partial) and send.args and not send.keywords):
        return "server"
    server = getattr(send.func, "__self__", None)
    # With a Server as its `__self__`, `send.func` is a bound method.
    if (
        not isinstance(server, Server)
        or cast(MethodType, send.func).__func__ is not Server.handle_reply
    ):
        return "server"
    if _untested_versions():
        return "version"
    protocol = send.args[0]
    transport = getattr(protocol, "transport", None)
    if not isinstance(transport, Connection) or transport.TLS:
        return "transport"  # TLS: daphne's transport is then Twisted's TLS protocol
    try:
        if protocol.autoFragmentSize or protocol.logOctets or protocol.trackedTimings:
            logger.warning(
                "direct writes are off for this connection: autobahn's autoFragmentSize, "
                "logOctets or trackTimings is set, which the writer does not reproduce"
            )
            return "options"
        return _writer(server.connections, protocol, transport)
    except AttributeError:  # another autobahn or Twisted than the ones this was written for
        logger.warning("direct writes are off: unexpected daphne connection", exc_info=True)
        return "attribute"


@functools.cache
def _untested_versions() -> bool:
    """Whether any of TESTED_VERSIONS is installed in another version; said once per process,
    as every connection of the process is then refused."""
    untested = []
    for name, tested in TESTED_VERSIONS.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "(not installed)"
        if installed != tested:
            untested.append(
                f"{name} {installed} is installed, direct writes were tested with {tested}"
            )
    if untested:
        logger.warning(
            "direct writes are off in this process: %s. Every frame goes through daphne's ASGI "
            "send instead. Install the pinned versions (pip install -r requirements.txt), or run "
            "tests/realtime/test_direct.py with these and update realtime.direct.TESTED_VERSIONS "
            "and the pins in requirements.txt together.",
            "; ".join(untested),
        )
    return bool(untested)


def _writer(connections: dict[Any, dict[str, Any]], protocol: Any, transport: Any) -> Writer:
    # Everything the writer reads, read once here: a library that renamed any of it turns
    # direct writes off for the connection (AttributeError) instead of failing every frame.
    for name in ("state", "send_state", "send_queue", "_perMessageCompress"):
        getattr(protocol, name)
    for name in ("STATE_OPEN", "SEND_STATE_GROUND", "maxMessagePayloadSize"):
        getattr(protocol, name)
    for name in ("_tempDataBuffer", "offset", "dataBuffer", "connected", "disconnecting"):
        getattr(transport, name)
    transport._writeDisconnected  # noqa: B018
    transport.write  # noqa: B018  # Twisted's buffered write: the fallback, in order
    return DirectWriter(connections, protocol, transport, transport.socket)


class DirectWriter:
    """One connection's direct writer: called with a frame, it writes it now, or returns False
    for the caller to use the ASGI send. Slotted: every idle socket holds one (bench S3)."""

    __slots__ = ("connections", "protocol", "sock", "transport")

    def __init__(
        self, connections: dict[Any, dict[str, Any]], protocol: Any, transport: Any, sock: Any
    ) -> None:
        self.connections = connections  # daphne's, by protocol: the connection's state
        self.protocol = protocol
        self.transport = transport
        self.sock = sock

    def __call__(self, frame: bytes) -> bool:
        protocol = self.protocol
        transport = self.transport
        if (
            protocol.state != protocol.STATE_OPEN
            or protocol.send_state != protocol.SEND_STATE_GROUND
            or protocol.send_queue
            or protocol._perMessageCompress is not None
            or transport._tempDataBuffer
            or transport.offset != len(transport.dataBuffer)
            or not transport.connected
            or transport.disconnecting
            or transport._writeDisconnected
        ):
            counts[2] += 1
            return False
        limit = protocol.maxMessagePayloadSize
        if 0 < limit < len(frame):
            counts[2] += 1
            return False  # autobahn's own check refuses it, through the ASGI send
        state = self.connections.get(protocol)
        if state is None or state.get("disconnected"):
            return True  # daphne drops sends to a closed connection; so do we
        try:
            sent = self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            transport.write(frame)  # Twisted meets the same error and closes the connection
            return True
        if sent < len(frame):
            counts[1] += 1
            transport.write(frame[sent:])  # the kernel buffer is full: Twisted keeps the rest
        else:
            counts[0] += 1
        return True
