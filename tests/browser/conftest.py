"""Browser tests: Debian's Chromium driven by Playwright against a real daphne process.

No browser is ever downloaded: Playwright launches CHROMIUM (default /usr/bin/chromium; Debian
package `chromium`). Without it the browser tests fail and say how to install it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import factories
from tests.conftest import DaphneServer

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


@pytest.fixture(scope="session")
def web(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """The server the pages talk to (any Origin: the port is chosen at start)."""
    return daphne_factory("browser", REALTIME_ALLOWED_ORIGINS="*")


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Sign in as `username` in a browser context of its own (one user per context) and open
    the trip's editing page, connected."""
    contexts = []

    def opener(server: DaphneServer, trip_id: int, username: str) -> Page:
        context = browser.new_context(base_url=server.http_url)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"/trips/{trip_id}/edit")
        page.fill('#signin input[name="username"]', username)
        page.fill('#signin input[name="password"]', factories.PASSWORD)
        page.click('#signin button[type="submit"]')
        expect(page.locator(".connection-status")).to_have_text("Connected")
        return page

    yield opener
    for context in contexts:
        context.close()
