"""The trip page's "Connection" details in Chromium: each socket's figures as the page's
WebSocketMetricsCollector counts them, which are the server's for the same socket."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from rest_framework.test import APIClient

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

# Metrics rows rewritten every 0.1 s; the heartbeat stays at 30 s, so nothing crosses a socket
# the test does not cause.
FRESH = {"METRICS_FLUSH_SECONDS": "0.1", "METRICS_LIVE_REFRESH_SECONDS": "0"}
PAIRS = {  # the client's field: the server's field for the same frames
    "messagesSent": "messagesReceived",
    "messagesReceived": "messagesSent",
    "bytesSent": "bytesReceived",
    "bytesReceived": "bytesSent",
    "errors": "errors",
}


@pytest.fixture
def crew():
    return factories.make_crew()


def page_figures(page: Page, socket: str) -> dict[str, Any]:
    return page.evaluate(
        "(name) => window.tripsage.metrics.getTrackedMetrics(window.tripsage[name])", socket
    )


def agreed(page: Page, staff: APIClient, socket: str, timeout: float = 15.0) -> dict[str, Any]:
    """The page's figures for one of its sockets once the server's are the same (the server's
    row is a flush behind); fails with both if they never are."""
    deadline = time.monotonic() + timeout
    while True:
        client = page_figures(page, socket)
        response = staff.get(f"/api/metrics/connections/{client['connectionId']}/")
        server = response.json() if response.status_code == 200 else {}
        mismatch = {mine: (client[mine], server.get(theirs)) for mine, theirs in PAIRS.items()}
        mismatch = {key: pair for key, pair in mismatch.items() if pair[0] != pair[1]}
        if not mismatch:
            return client
        assert time.monotonic() < deadline, f"{socket}: client vs server {mismatch}"
        time.sleep(0.1)


def test_the_connection_details_show_the_sockets_figures_the_server_counts_too(
    daphne_factory, open_page, crew
):
    server = daphne_factory("browser-metrics", REALTIME_ALLOWED_ORIGINS="*", **FRESH)
    _, _bob, _, trip = crew
    staff = APIClient()
    staff.force_authenticate(factories.make_user("ops", is_staff=True))
    page = open_page(server, trip.pk, "bob")

    page.fill("#chat-text", "Grüße aus Zürich ✈ 🧳")
    page.click(".chat-send")
    expect(page.locator(".chat-messages li").last).to_contain_text("Zürich ✈ 🧳")
    page.fill('input[name="destination"]', "東京")
    page.click('button[type="submit"]')
    deadline = time.monotonic() + 10
    while True:  # saved, and its ack on the way: the figures settle once it has arrived
        trip.refresh_from_db()
        if trip.destination == "東京":
            break
        assert time.monotonic() < deadline, "the edit was not saved"
        time.sleep(0.1)

    page.click(".connection-details summary")
    for socket in ("trip", "chat"):
        figures = agreed(page, staff, socket)
        row = page.locator(f'.connection-metrics tr[data-socket="{socket}"]')
        expect(row).to_have_attribute("data-connection-id", figures["connectionId"])
        expect(row.locator(".metric-sent")).to_have_text(str(figures["messagesSent"]))
        expect(row.locator(".metric-received")).to_have_text(str(figures["messagesReceived"]))
        expect(row.locator(".metric-reconnects")).to_have_text("0")

    # A new trip socket: a reconnect the page shows, on a record of its own that agrees too.
    first = page_figures(page, "trip")["connectionId"]
    page.evaluate("() => window.tripsage.trip.reconnect()")
    trip_row = page.locator('.connection-metrics tr[data-socket="trip"]')
    expect(trip_row.locator(".metric-reconnects")).to_have_text("1")
    expect(trip_row).not_to_have_attribute("data-connection-id", first)
    expect(page.locator(".connection-status")).to_have_text("Connected")
    assert agreed(page, staff, "trip")["reconnectAttempts"] == 1
