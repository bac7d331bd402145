"""The admin's realtime dashboard in Chromium, fed by real sockets on a real daphne process.

A staff user signs in to the admin and opens the dashboard; three WebSocket clients (alice, bob
and carol on their trip) connect and send traffic from a thread of their own, and the page's
cards follow on their own 5-second refresh: the connections go up by three, messages per minute
becomes non-zero, and both come back when the clients leave."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from tests import factories
from tests.conftest import DaphneServer
from tests.wsclient import connect, send_json

pytestmark = pytest.mark.django_db(transaction=True)

# The page refreshes every 5 s and the server flushes every 0.5 s: a change shows within ~6 s.
REFRESH_TIMEOUT_MS = 20_000


def card(page: Page, metric: str):
    return page.locator(f'.metric-card[data-metric="{metric}"] .metric-value')


class OpenSockets:
    """Real protocol clients kept open on an event loop in a thread of their own (the test's
    thread runs Playwright's loop): each answers pings and counts echo replies until closed."""

    def __init__(self, base_url: str, targets: list[tuple[str, str]]) -> None:
        self.base_url = base_url
        self.targets = targets  # (path, access token)
        self.sockets: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.echoes_received = 0
        self.echo_arrived: asyncio.Event | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def open(self) -> None:
        self._run(self._open())

    def echo(self, per_socket: int) -> None:
        """`per_socket` echoes on every socket, and wait for all their replies."""
        expected = self.echoes_received + per_socket * len(self.sockets)
        self._run(self._echo(per_socket, expected))

    def close(self) -> None:
        try:
            self._run(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()

    async def _open(self) -> None:
        for n, (path, token) in enumerate(self.targets):
            ws, _ = await connect(self.base_url, path, token, request_id=f"auth-{n}")
            self.sockets.append(ws)
            self.readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "ping":
                await send_json(ws, {"type": "pong", "request_id": message["id"]})
            elif message["type"] == "echo":
                self.echoes_received += 1
                if self.echo_arrived is not None:
                    self.echo_arrived.set()

    async def _echo(self, per_socket: int, expected: int) -> None:
        for i in range(per_socket):
            for n, ws in enumerate(self.sockets):
                await send_json(ws, {"type": "echo", "id": f"e-{n}-{i}", "data": {"n": i}})
        self.echo_arrived = asyncio.Event()
        async with asyncio.timeout(10):
            while self.echoes_received < expected:
                await self.echo_arrived.wait()
                self.echo_arrived.clear()

    async def _close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


@pytest.fixture(scope="module")
def dash(module_daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    # Pings every 0.5 s (answered by the test's sockets), so latency is measured, not absent.
    return module_daphne_factory(
        "dashboard",
        REALTIME_ALLOWED_ORIGINS="*",
        METRICS_FLUSH_SECONDS="0.5",
        REALTIME_HEARTBEAT_SECONDS="0.5",
        REALTIME_HEARTBEAT_TIMEOUT_SECONDS="20",
    )


@pytest.fixture
def staff_page(browser: Browser, dash: DaphneServer) -> Iterator[Page]:
    get_user_model().objects.create_superuser("ops", password=factories.PASSWORD)
    context = browser.new_context(base_url=dash.http_url)
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", factories.PASSWORD)
    page.click('#login-form input[type="submit"]')
    expect(page.locator("#user-tools")).to_contain_text("ops")
    yield page
    context.close()


def test_the_admin_index_links_to_the_dashboard(staff_page):
    staff_page.goto("/admin/")
    staff_page.get_by_role("link", name="Realtime dashboard →").click()
    expect(staff_page).to_have_url(re.compile(r"/admin/realtime/dashboard/$"))
    expect(staff_page.locator(".breadcrumbs")).to_contain_text("Realtime dashboard")
    expect(staff_page.locator(".last-updated")).to_have_text(
        re.compile(r"^Last updated \d\d:\d\d:\d\d$")
    )
    expect(staff_page.locator(".fetch-error")).to_be_hidden()


def test_the_dashboard_needs_a_staff_user(browser, dash):
    factories.make_user("dora")
    context = browser.new_context(base_url=dash.http_url)
    page = context.new_page()
    page.goto("/admin/realtime/dashboard/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/realtime/dashboard/"))
    page.fill("#id_username", "dora")
    page.fill("#id_password", factories.PASSWORD)
    page.click('#login-form input[type="submit"]')
    expect(page.locator(".errornote")).to_be_visible()  # not staff: the admin refuses her
    context.close()


def test_the_cards_follow_live_connections(staff_page, dash):
    alice, bob, carol, trip = factories.make_crew()
    page = staff_page
    page.goto("/admin/realtime/dashboard/")
    active = card(page, "active-connections")
    per_minute = card(page, "messages-per-minute")
    change = page.locator('.metric-card[data-metric="active-connections"] .metric-change')
    # A baseline that held over two refreshes (other test servers may still be flushing).
    expect(change).to_have_text("no change", timeout=REFRESH_TIMEOUT_MS)
    before = int(active.text_content())

    sockets = OpenSockets(
        dash.ws_url,
        [(f"/ws/trips/{trip.pk}/", factories.access_token(user)) for user in (alice, bob, carol)],
    )
    try:
        sockets.open()
        expect(active).to_have_text(str(before + 3), timeout=REFRESH_TIMEOUT_MS)
        sockets.echo(per_socket=4)
        expect(per_minute).not_to_have_text(re.compile(r"^(0\.0|—)$"), timeout=REFRESH_TIMEOUT_MS)
        expect(card(page, "error-rate")).to_have_text(re.compile(r"^\d+\.\d%$"))
        expect(card(page, "average-latency")).to_have_text(
            re.compile(r"^\d+\.\d ms$"), timeout=REFRESH_TIMEOUT_MS
        )
        trips_row = page.locator('.by-type-rows tr[data-type="trip_collaboration"]')
        expect(trips_row.locator(".active")).to_have_text(re.compile(r"^[1-9]\d*$"))
        expect(page.locator(".fetch-error")).to_be_hidden()
    finally:
        sockets.close()

    expect(active).to_have_text(str(before), timeout=REFRESH_TIMEOUT_MS)
    expect(change).to_have_text(re.compile(r"^▼ [123]$"))  # vs. the refresh before
