"""Browser tests: Debian's Chromium driven by Playwright against a real daphne process.

No browser is ever downloaded: Playwright launches CHROMIUM (default /usr/bin/chromium; Debian
package `chromium`). Without it the browser tests fail and say how to install it."""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests import factories
from tests.conftest import DaphneServer
from tests.wsclient import FrameCheck

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}: apt-get install chromium "
            "(or set CHROMIUM to its path). Playwright never downloads a browser here.",
            pytrace=False,
        )
    # Playwright's sync API runs an event loop in this thread for the rest of the session, and
    # Django refuses synchronous database access beside a running loop. Allowed from here on:
    # the browser tests run last (tests/conftest.py), and server processes never inherit this.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


def _watch(page: Page, check: FrameCheck) -> None:
    def socket_opened(socket: WebSocket) -> None:
        def frame_received(payload: str | bytes) -> None:
            # Raising here would only reach Playwright's event dispatch: the check remembers
            # the failure and the test fails at teardown (server_frames, tests/conftest.py).
            with contextlib.suppress(AssertionError):
                check(payload, socket.url)

        socket.on("framereceived", frame_received)

    page.on("websocket", socket_opened)


@pytest.fixture(autouse=True)
def _check_page_frames(monkeypatch: pytest.MonkeyPatch, server_frames: FrameCheck) -> None:
    """Every frame a page receives over a WebSocket is checked against protocol.server's
    schemas: pages of every context a test makes (its own, pytest-playwright's, `open_page`)."""
    new_context, new_page = Browser.new_context, Browser.new_page

    def checked_new_context(self: Browser, *args: Any, **kwargs: Any) -> BrowserContext:
        context = new_context(self, *args, **kwargs)
        context.on("page", lambda page: _watch(page, server_frames))
        return context

    def checked_new_page(self: Browser, *args: Any, **kwargs: Any) -> Page:
        page = new_page(self, *args, **kwargs)
        _watch(page, server_frames)
        return page

    monkeypatch.setattr(Browser, "new_context", checked_new_context)
    monkeypatch.setattr(Browser, "new_page", checked_new_page)


@pytest.fixture(scope="session")
def web(session_daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """The server the pages talk to (any Origin: the port is chosen at start)."""
    return session_daphne_factory("browser", REALTIME_ALLOWED_ORIGINS="*")


def _not_loaded(server: DaphneServer, error: Exception) -> str:
    """What a page that did not load leaves to go on: whether the server still answers its
    health check, and the end of its log (once, a CI run's session server stopped serving pages
    for five minutes and nothing said why)."""
    try:
        with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=5) as response:
            health = f"/healthz answered {response.status}"
    except OSError as failure:
        health = f"/healthz did not answer: {failure!r}"
    alive = "running" if server.process.poll() is None else f"exited {server.process.returncode}"
    return f"{error}\nserver {alive}; {health}; the end of its log:\n{server.log()[-6000:]}"


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Sign in as `username` in a browser context of its own (one user per context) and open
    the trip's editing page, connected."""
    contexts = []

    def opener(server: DaphneServer, trip_id: int, username: str) -> Page:
        context = browser.new_context(base_url=server.http_url)
        contexts.append(context)
        page = context.new_page()
        try:
            page.goto(f"/trips/{trip_id}/edit")
        except PlaywrightTimeoutError as error:
            raise AssertionError(_not_loaded(server, error)) from None
        page.fill('#signin input[name="username"]', username)
        page.fill('#signin input[name="password"]', factories.PASSWORD)
        page.click('#signin button[type="submit"]')
        expect(page.locator(".connection-status")).to_have_text("Connected")
        return page

    yield opener
    for context in contexts:
        context.close()
