"""The frame check on the test clients (tests/wsclient.py, tests/conftest.py): a frame from the
server that fits no schema fails the test that received it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from channels.testing import WebsocketCommunicator
from websockets.asyncio.server import ServerConnection

import protocol
from tests.conftest import ROOT
from tests.wsclient import FrameCheck

# A `pong` with a misspelled field: what a typo in a consumer would send.
BAD_FRAME = json.dumps({**protocol.server_message("pong", request_id="p-1"), "reqest_id": "p-1"})


async def sends_a_bad_frame(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI WebSocket app that accepts and sends BAD_FRAME."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": BAD_FRAME})
    await receive()  # websocket.disconnect


@pytest.fixture
async def frame_server() -> AsyncIterator[Any]:
    """A loopback WebSocket server that sends each connection the frame `frame_server.frame`."""

    async def handler(connection: ServerConnection) -> None:
        await connection.send(serve.frame)
        await connection.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0) as serve:
        serve.frame = BAD_FRAME
        serve.url = f"ws://127.0.0.1:{serve.sockets[0].getsockname()[1]}"
        yield serve


def test_a_frame_that_fits_passes_and_names_its_schema():
    check = FrameCheck()
    check(protocol.encode(protocol.server_message("pong", request_id="p-1")), "/ws/chat/1/")
    assert check.failures == []


def test_a_bad_frame_fails_naming_the_type_and_the_field():
    check = FrameCheck()
    with pytest.raises(AssertionError, match=r"'pong'.*reqest_id: Extra inputs"):
        check(BAD_FRAME, "/ws/trips/1/")
    assert len(check.failures) == 1


def test_an_ack_is_checked_against_its_connection_type():
    ack = protocol.server_message("ack", request_id="n-1", ids=[1], unread_count=0)
    check = FrameCheck()
    check(protocol.encode(ack), "ws://127.0.0.1:1/ws/notifications/")  # a notifications ack
    with pytest.raises(AssertionError, match="'ack' does not fit ChatAck"):
        check(protocol.encode(ack), "ws://127.0.0.1:1/ws/chat/3/")


def test_a_frame_that_is_not_json_fails():
    with pytest.raises(AssertionError, match="Expecting value"):
        FrameCheck()("pong", "/ws/trips/1/")


async def test_the_communicator_checks_what_it_receives(server_frames):
    communicator = WebsocketCommunicator(sends_a_bad_frame, "/ws/trips/1/")
    await communicator.connect()
    with pytest.raises(AssertionError, match=r"'pong'.*reqest_id"):
        await communicator.receive_json_from()
    await communicator.disconnect()
    assert len(server_frames.take()) == 1  # taken: this test expected it


async def test_the_real_client_checks_what_it_receives(server_frames, frame_server):
    async with websockets.connect(f"{frame_server.url}/ws/chat/1/") as ws:
        with pytest.raises(AssertionError, match=r"'pong'.*reqest_id"):
            await ws.recv()
    async with websockets.connect(f"{frame_server.url}/ws/chat/1/") as ws:
        with pytest.raises(AssertionError, match=r"'pong'.*reqest_id"):
            async for _ in ws:  # iteration reads through recv too
                pass
    assert len(server_frames.take()) == 2


async def test_a_bad_frame_read_where_nobody_looks_is_kept_for_teardown(
    server_frames, frame_server
):
    async def reader() -> None:
        async with websockets.connect(f"{frame_server.url}/ws/trips/1/") as ws:
            await ws.recv()

    results = await asyncio.gather(reader(), return_exceptions=True)  # swallowed
    assert isinstance(results[0], AssertionError)
    [failure] = server_frames.take()
    assert "'pong'" in failure and "reqest_id" in failure


INNER_TESTS = """
import asyncio

import websockets

from tests.test_protocol_frames import BAD_FRAME
from tests.wsclient import frame_check


def test_good():
    pass


def test_reads_a_bad_frame_in_a_task_that_swallows_it():
    async def main():
        async def handler(connection):
            await connection.send(BAD_FRAME)
            await connection.wait_closed()

        async with websockets.serve(handler, "127.0.0.1", 0) as serve:
            port = serve.sockets[0].getsockname()[1]

            async def reader():
                async with websockets.connect(f"ws://127.0.0.1:{port}/ws/trips/1/") as ws:
                    await ws.recv()

            await asyncio.gather(reader(), return_exceptions=True)

    asyncio.run(main())


def test_fails_on_its_own():
    try:
        frame_check(BAD_FRAME, "/ws/trips/1/")
    except AssertionError:
        pass
    raise RuntimeError("a failure of its own")
"""


def test_the_fixture_fails_the_test_that_received_a_bad_frame(tmp_path: Path):
    """Run as pytest runs the suite, the fixture fails the test at teardown, naming the frame's
    type and field; a test that already failed is not reported twice."""
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_makereport, server_frames  # noqa: F401\n"
    )
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-rA", str(tmp_path)),
            *("-p", "no:django", "-p", "no:cacheprovider"),  # the check needs no database
            *("-o", "asyncio_default_fixture_loop_scope=function"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert "1 failed, 2 passed, 1 error" in out, out
    assert "ERROR test_inner.py::test_reads_a_bad_frame_in_a_task_that_swallows_it" in out, out
    assert "server frame(s) fit no schema" in out and "reqest_id" in out, out
    assert "FAILED test_inner.py::test_fails_on_its_own" in out, out
