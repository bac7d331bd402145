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

Only daphne over plain TCP is recognised (`writer_for` returns None under any other server, for
TLS, or when REALTIME_DIRECT_WRITES is off); the callers then use the ASGI send as before.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings

from metrics import instruments

logger = logging.getLogger(__name__)

Writer = Callable[[bytes], bool]

# Plain integers counted on the hot path: sent, partial, declined
# (tripsage_ws_direct_writes_total, declared in metrics.instruments).
counts = instruments.direct_write_counts

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
    if not settings.REALTIME_DIRECT_WRITES:
        return None
    try:
        from daphne.server import Server
        from twisted.internet.tcp import Connection
    except ImportError:  # not running under daphne
        return None
    if not (isinstance(send, partial) and send.args and not send.keywords):
        return None
    server = getattr(send.func, "__self__", None)
    if not isinstance(server, Server) or send.func.__func__ is not Server.handle_reply:
        return None
    protocol = send.args[0]
    transport = getattr(protocol, "transport", None)
    if not isinstance(transport, Connection) or transport.TLS:
        return None
    try:
        return _writer(server.connections, protocol, transport)
    except AttributeError:  # another autobahn or Twisted than the ones this was written for
        logger.warning("direct writes are off: unexpected daphne connection", exc_info=True)
        return None


def _writer(connections: dict[Any, dict[str, Any]], protocol: Any, transport: Any) -> Writer:
    if protocol.autoFragmentSize or protocol.logOctets or protocol.trackedTimings:
        raise AttributeError("autobahn options this writer does not reproduce")
    # Everything the writer reads, read once here: a library that renamed any of it turns
    # direct writes off for the connection (AttributeError) instead of failing every frame.
    for name in ("state", "send_state", "send_queue", "_perMessageCompress"):
        getattr(protocol, name)
    protocol.maxMessagePayloadSize  # noqa: B018
    for name in ("_tempDataBuffer", "offset", "dataBuffer", "connected", "disconnecting"):
        getattr(transport, name)
    transport._writeDisconnected  # noqa: B018
    sock = transport.socket
    is_open = protocol.STATE_OPEN
    ground = protocol.SEND_STATE_GROUND
    sent_all = transport.write  # Twisted's buffered write: the fallback, in order

    def write(frame: bytes) -> bool:
        """Write `frame` now, or return False for the caller to use the ASGI send."""
        if (
            protocol.state != is_open
            or protocol.send_state != ground
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
        state = connections.get(protocol)
        if state is None or state.get("disconnected"):
            return True  # daphne drops sends to a closed connection; so do we
        try:
            sent = sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent_all(frame)  # Twisted meets the same error and closes the connection
            return True
        if sent < len(frame):
            counts[1] += 1
            sent_all(frame[sent:])  # the kernel buffer is full: Twisted keeps the rest
        else:
            counts[0] += 1
        return True

    return write
