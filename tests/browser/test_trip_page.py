"""The seed's three Playwright scenarios, and three more, in Debian's Chromium against daphne.

Two users in two browser contexts (the seed's comment says two users), signed in on the page
itself, editing a trip through the browser client (clients/js) over real sockets."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crew():
    return factories.make_crew()  # alice owner, bob editor, carol viewer


def test_multiple_users_can_edit_trip_simultaneously(web, open_page, crew):
    _alice, _bob, _, trip = crew
    user1 = open_page(web, trip.pk, "alice")
    user2 = open_page(web, trip.pk, "bob")

    # Both users should be connected via WebSocket
    expect(user1.locator(".collaborator-count")).to_have_text("2")
    expect(user2.locator(".collaborator-count")).to_have_text("2")

    # User 1 starts editing the trip name
    user1.locator('input[name="tripName"]').click()
    user1.locator('input[name="tripName"]').fill("European Adventure")

    # User 2 should see the editing indicator
    expect(user2.locator(".editing-indicator")).to_be_visible()
    expect(user2.locator(".editing-indicator")).to_contain_text("alice")

    # User 1 saves the change
    user1.locator('button[type="submit"]').click()

    # Both users should see the updated name
    expect(user1.locator('input[name="tripName"]')).to_have_value("European Adventure")
    expect(user2.locator('input[name="tripName"]')).to_have_value("European Adventure")

    # User 2 edits the budget
    user2.locator('input[name="budget"]').fill("3500")

    # User 1 should see the change
    expect(user1.locator('input[name="budget"]')).to_have_value("3500")
    # And it was stored, not only shown.
    trip.refresh_from_db()
    assert trip.name == "European Adventure" and str(trip.budget) in ("3500", "3500.00")


def test_should_handle_connection_drops_gracefully(web, open_page, crew):
    _, _bob, _, trip = crew
    page = open_page(web, trip.pk, "bob")

    # Simulate WebSocket disconnection
    page.evaluate("() => window.dispatchEvent(new Event('offline'))")

    # Should show disconnected state
    expect(page.locator(".connection-status")).to_have_text("Reconnecting...")

    # Simulate reconnection
    page.evaluate("() => window.dispatchEvent(new Event('online'))")

    # Should reconnect and show connected state
    expect(page.locator(".connection-status")).to_have_text("Connected")


def test_should_resolve_edit_conflicts(web, open_page, crew):
    _, _, _, trip = crew
    user1 = open_page(web, trip.pk, "alice")
    user2 = open_page(web, trip.pk, "bob")

    # Both users edit the same field simultaneously
    user1.locator('input[name="budget"]').fill("3000")
    user2.locator('input[name="budget"]').fill("3500")

    # Should detect conflict and show resolution dialog
    expect(user1.locator(".conflict-dialog")).to_be_visible()
    expect(user2.locator(".conflict-dialog")).to_be_visible()

    # User 1 resolves by choosing their version
    user1.locator(".conflict-dialog .use-mine").click()

    # Both should see user 1's value
    expect(user1.locator('input[name="budget"]')).to_have_value("3000")
    expect(user2.locator('input[name="budget"]')).to_have_value("3000")
    expect(user2.locator(".conflict-dialog")).to_be_hidden()
    trip.refresh_from_db()
    assert str(trip.budget) in ("3000", "3000.00")


def test_a_user_who_was_offline_sees_every_change_after_coming_back(web, open_page, crew):
    _, _, _, trip = crew
    user1 = open_page(web, trip.pk, "alice")
    user2 = open_page(web, trip.pk, "bob")
    user2.evaluate("() => window.dispatchEvent(new Event('offline'))")
    expect(user2.locator(".connection-status")).to_have_text("Reconnecting...")
    expect(user1.locator(".collaborator-count")).to_have_text("1")

    user1.locator('input[name="tripName"]').fill("Away and back")
    user1.locator('input[name="destination"]').fill("Porto")
    user1.locator('input[name="budget"]').fill("777")
    user1.locator('button[type="submit"]').click()
    expect(user1.locator(".save-state")).to_have_text("Saved")
    # Still away: nothing arrived.
    expect(user2.locator('input[name="tripName"]')).not_to_have_value("Away and back")

    user2.evaluate("() => window.dispatchEvent(new Event('online'))")
    expect(user2.locator(".connection-status")).to_have_text("Connected")
    expect(user2.locator('input[name="tripName"]')).to_have_value("Away and back")
    expect(user2.locator('input[name="destination"]')).to_have_value("Porto")
    expect(user2.locator('input[name="budget"]')).to_have_value("777")
    expect(user2.locator(".collaborator-count")).to_have_text("2")


def test_a_viewer_cannot_edit(web, open_page, crew):
    _, _, _, trip = crew
    viewer = open_page(web, trip.pk, "carol")
    expect(viewer.locator(".role")).to_have_text("(viewer)")
    for name in ("tripName", "budget", "destination"):
        expect(viewer.locator(f'input[name="{name}"]')).to_be_disabled()
    expect(viewer.locator('#trip-form button[type="submit"]')).to_be_disabled()
    # Even a client that sends anyway is refused by the server, and the page says so.
    viewer.evaluate(
        """() => window.tripsage.trip.send({type: "trip.update", update_id: crypto.randomUUID(),
             field: "name", value: "Hijacked", base_version: 0})"""
    )
    expect(viewer.locator(".error-message")).to_contain_text("Viewers cannot edit")
    trip.refresh_from_db()
    assert trip.name != "Hijacked"


def test_a_rate_limited_user_sees_the_limit(daphne_factory, open_page, crew):
    limited = daphne_factory(
        "browser-limited",
        REALTIME_ALLOWED_ORIGINS="*",
        REALTIME_RATE_LIMITS="trip_collaboration=30/3,chat=30/3",
    )
    _, _, _, trip = crew
    page = open_page(limited, trip.pk, "alice")
    # Each field edit costs an editing indicator and an update: the burst of 3 runs out.
    for name, value in (("tripName", "One"), ("destination", "Two"), ("budget", "3")):
        page.locator(f'input[name="{name}"]').fill(value)
    page.locator('#trip-form button[type="submit"]').click()
    notice = page.locator(".rate-limit-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Rate limit reached: 30 messages per 60 s")
    expect(page.locator(".connection-status")).to_have_text("Connected")


def test_a_refused_token_refresh_is_sent_again_without_a_notice(daphne_factory, open_page, crew):
    """The refresh bucket holds one: of the page's two sockets taking a new token at once, one
    is refused; its connection sends the token again after retry_after, and the user is shown
    nothing (their messages were never held back)."""
    server = daphne_factory(
        "browser-refresh-limited",
        REALTIME_ALLOWED_ORIGINS="*",
        REALTIME_REFRESH_BURST="1",
        REALTIME_REFRESH_PER_MINUTE="60",
    )
    _, _, _, trip = crew
    page = open_page(server, trip.pk, "alice")
    page.wait_for_function("() => window.tripsage.chat.state === 'connected'")
    page.evaluate(
        """() => {
            window.seen = [];
            const { trip, chat } = window.tripsage;
            for (const connection of [trip, chat]) {
                connection.on("message", (m) => {
                    if (m.type === "auth.refreshed") window.seen.push("refreshed");
                    if (m.type === "error") {
                        window.seen.push(m.error.details?.limit_type ?? m.error.code);
                    }
                });
            }
            trip.setToken(trip.token);
            chat.setToken(chat.token);
        }"""
    )
    page.wait_for_function(
        "() => window.seen.filter((s) => s === 'refreshed').length === 2", timeout=15000
    )
    assert sorted(page.evaluate("window.seen")) == ["auth.refresh", "refreshed", "refreshed"]
    # At once, not expect()'s waiting: a notice shown for the refusal stays up 4 s.
    assert page.locator(".rate-limit-notice").is_hidden()
    expect(page.locator(".connection-status")).to_have_text("Connected")


def test_a_page_whose_origin_the_server_refuses_says_so_instead_of_reconnecting(
    daphne_factory, browser, crew
):
    """Served on a port its origin list does not name, with the same-host rule off (as in
    production), the page says why it cannot connect and what to change, and opens no socket."""
    _, _, _, trip = crew
    server = daphne_factory(
        "browser-refused-origin",
        REALTIME_ALLOWED_ORIGINS="http://elsewhere.example",
        REALTIME_ALLOW_SAME_HOST_ORIGIN="false",
    )
    context = browser.new_context(base_url=server.http_url)
    page = context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"/trips/{trip.pk}/edit")
    expect(page.locator(".origin-refused")).to_contain_text("REALTIME_ALLOWED_ORIGINS")
    expect(page.locator(".connection-status")).to_have_text(
        "Cannot connect: this page's origin is refused"
    )
    assert sockets == []
    context.close()
