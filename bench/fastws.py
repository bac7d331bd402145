"""A minimal, fast WebSocket client on asyncio's Protocol API, for the load generator.

Server frames are unmasked and unfragmented here (daphne/autobahn do not fragment by default), so
receiving is a header parse and a slice; text frames are handed over as bytes, undecoded, so a
receiver can look for what it measures without parsing JSON. Protocol pings are answered.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable


class FastWebSocket(asyncio.Protocol):
    protocol_pings = 0  # WebSocket pings answered by this process (daphne sends them)

    def __init__(self, on_text: Callable[[FastWebSocket, bytes], None]) -> None:
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code or 1006)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                self.transport.close()
                return
            self.handshaken = True
            self.opened.set_result(None)
        self._frames()

    def _frames(self) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            header = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                header = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                header = 10
            if len(buf) < header + length:
                return
            payload = bytes(buf[header : header + length])
            del buf[: header + length]
            if opcode == 1:
                self.on_text(self, payload)
            elif opcode == 9:
                FastWebSocket.protocol_pings += 1
                self._send_frame(0xA, payload)
            elif opcode == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._send_frame(0x8, payload[:2])
                self.transport.close()

    # -- sending ------------------------------------------------------------------------------

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        if n:
            repeated = (key * (n // 4 + 1))[:n]
            masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
                n, "big"
            )
        else:
            masked = b""
        self.transport.write(header + key + masked)

    def send_text(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def close(self) -> None:
        self._send_frame(0x8, struct.pack("!H", 1000))
        if self.transport is not None:
            self.transport.close()


async def connect(
    host: str, port: int, path: str, on_text: Callable[[FastWebSocket, bytes], None]
) -> FastWebSocket:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: FastWebSocket(on_text), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    client.transport.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await client.opened
    return client
