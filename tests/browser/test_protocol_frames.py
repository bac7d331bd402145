"""The frame check in Playwright's pages (tests/browser/conftest.py): a frame a page receives that
fits no schema is kept for the test's teardown, which fails."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import websockets
from playwright.sync_api import Browser
from websockets.asyncio.server import ServerConnection

from tests.test_protocol_frames import BAD_FRAME

OPEN_AND_READ = """url => new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.onmessage = event => { socket.close(); resolve(event.data); };
    socket.onerror = reject;
})"""


@pytest.fixture
def bad_frame_url() -> Iterator[str]:
    """A loopback WebSocket server, on a loop of its own, sending BAD_FRAME to each socket."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def handler(connection: ServerConnection) -> None:
        await connection.send(BAD_FRAME)
        await connection.wait_closed()

    async def start() -> websockets.Server:
        return await websockets.serve(handler, "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/trips/1/"
    server.close()
    asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.mark.parametrize("opened_by", ["context", "browser"])
def test_a_bad_frame_in_a_page_is_kept_for_teardown(
    browser: Browser, server_frames, bad_frame_url, opened_by
):
    if opened_by == "context":
        context = browser.new_context()
        page = context.new_page()
    else:
        page = browser.new_page()
        context = page.context
    assert page.evaluate(OPEN_AND_READ, bad_frame_url) == BAD_FRAME
    page.wait_for_timeout(100)  # Playwright delivers the frame event to Python meanwhile
    context.close()
    [failure] = server_frames.take()  # taken: this test expected it, so teardown passes
    assert "'pong'" in failure and "reqest_id: Extra inputs" in failure
