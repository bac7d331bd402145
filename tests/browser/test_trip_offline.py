"""The trip page without network (issue 18, part 3), in Debian's Chromium against daphne.

`context.set_offline(True)` fails the page's HTTP requests, sets `navigator.onLine` and fires the
window's `offline` event, but leaves open WebSockets alone (microsoft/playwright#4910): the page
takes `offline` as "the sockets are down", as it must for a real loss of network, and its edits
and chat messages wait in the outbox (localStorage) until `online`. A reload without network is
answered by the page's service worker from what it kept."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from collaboration.models import ChatMessage, TripEvent
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crew():
    return factories.make_crew()  # alice owner, bob editor, carol viewer


def kept_by_the_service_worker(page: Page) -> list[str]:
    return page.evaluate(
        """async () => {
             const cache = await caches.open("tripsage-pages-v1");
             return (await cache.keys()).map((request) => new URL(request.url).pathname);
           }"""
    )


def go_offline(page: Page) -> None:
    # The worker must have kept the page and its files first, as after any earlier visit.
    assert page.evaluate("() => window.tripsage.offlineReady") is True
    page.context.set_offline(True)
    expect(page.locator(".connection-status")).to_have_text("Offline")


def test_offline_edits_survive_a_reload_reach_the_other_user_and_a_collision_is_a_conflict(
    web, open_page, crew
):
    _, _, _, trip = crew
    alice = open_page(web, trip.pk, "alice")
    bob = open_page(web, trip.pk, "bob")
    expect(bob.locator(".collaborator-count")).to_have_text("2")

    go_offline(alice)
    expect(bob.locator(".collaborator-count")).to_have_text("1")  # alice's sockets are closed
    alice.locator('input[name="tripName"]').fill("Offline in Porto")
    alice.locator('input[name="destination"]').fill("Porto, Portugal")
    outbox = alice.locator(".outbox-status")
    expect(outbox).to_have_text("2 changes waiting to be sent")

    alice.reload()  # no network: the service worker answers
    expect(alice.locator('input[name="tripName"]')).to_have_value("Offline in Porto")
    expect(alice.locator('input[name="destination"]')).to_have_value("Porto, Portugal")
    expect(outbox).to_have_text("2 changes waiting to be sent")
    expect(alice.locator(".connection-status")).to_have_text("Offline")
    expect(alice.locator(".trip-title")).to_have_text(trip.name)  # the kept snapshot's
    # Nothing reached bob meanwhile.
    expect(bob.locator('input[name="tripName"]')).to_have_value(trip.name)

    alice.context.set_offline(False)
    expect(alice.locator(".connection-status")).to_have_text("Connected")
    expect(bob.locator('input[name="tripName"]')).to_have_value("Offline in Porto")
    expect(bob.locator('input[name="destination"]')).to_have_value("Porto, Portugal")
    expect(outbox).to_be_hidden()
    expect(alice.locator(".save-state")).to_have_text("Saved")
    expect(bob.locator(".collaborator-count")).to_have_text("2")
    trip.refresh_from_db()
    assert (trip.name, trip.destination) == ("Offline in Porto", "Porto, Portugal")
    # Each sent once (with its original update_id), whatever the reload and reconnect did.
    changes = TripEvent.objects.filter(trip=trip, type="trip.updated")
    assert sorted(changes.values_list("field", flat=True)) == ["destination", "name"]

    # A third edit offline, of the budget, which bob changes meanwhile: a conflict on return.
    go_offline(alice)
    alice.locator('input[name="budget"]').fill("4000")
    alice.locator('input[name="currency"]').click()  # leaves the budget field
    expect(outbox).to_have_text("1 change waiting to be sent")
    bob.locator('input[name="budget"]').fill("4500")
    expect(bob.locator(".save-state")).to_have_text("Saved")

    alice.context.set_offline(False)
    dialog = alice.locator(".conflict-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".conflict-mine")).to_have_text("4000")
    expect(dialog.locator(".conflict-theirs")).to_have_text("4500")
    expect(dialog.locator(".conflict-by")).to_have_text("(bob)")
    expect(bob.locator(".conflict-dialog")).to_be_visible()
    expect(outbox).to_be_hidden()
    dialog.locator(".use-mine").click()
    expect(bob.locator('input[name="budget"]')).to_have_value("4000")
    expect(alice.locator('input[name="budget"]')).to_have_value("4000")
    expect(bob.locator(".conflict-dialog")).to_be_hidden()
    trip.refresh_from_db()
    assert str(trip.budget) in ("4000", "4000.00")


def test_a_chat_message_typed_offline_arrives_once_after_a_reload_and_reconnect(
    web, open_page, crew
):
    _, _, _, trip = crew
    alice = open_page(web, trip.pk, "alice")
    bob = open_page(web, trip.pk, "bob")
    text = "Typed on the train, no signal"

    go_offline(alice)
    alice.locator("#chat-text").fill(text)
    alice.locator(".chat-send").click()
    pending = alice.locator(".chat-messages li.pending")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text(text)
    expect(pending.locator(".waiting")).to_have_text("waiting to be sent")
    expect(alice.locator(".outbox-status")).to_have_text("1 message waiting to be sent")

    alice.reload()
    expect(alice.locator(".chat-messages li.pending")).to_contain_text(text)
    expect(alice.locator(".outbox-status")).to_have_text("1 message waiting to be sent")
    expect(bob.locator(".chat-messages li", has_text=text)).to_have_count(0)

    alice.context.set_offline(False)
    expect(alice.locator(".connection-status")).to_have_text("Connected")
    expect(bob.locator(".chat-messages li", has_text=text)).to_have_count(1)
    expect(bob.locator(".chat-messages li", has_text=text).locator(".author")).to_have_text("alice")
    expect(alice.locator(".chat-messages li", has_text=text)).to_have_count(1)
    expect(alice.locator(".chat-messages li.pending")).to_have_count(0)
    expect(alice.locator(".outbox-status")).to_be_hidden()
    assert ChatMessage.objects.filter(trip=trip, text=text).count() == 1


def test_another_user_of_the_same_browser_never_sends_what_was_left_waiting(web, browser, crew):
    """Alice leaves an edit waiting and closes the tab; bob signs in on the same browser (same
    localStorage): his page neither shows nor sends it. Alice, back, sends it."""
    _, _, _, trip = crew
    destination = trip.destination
    context = browser.new_context(base_url=web.http_url)
    page = context.new_page()

    def sign_in(username: str) -> None:
        page.goto(f"/trips/sign-in/?next=/trips/{trip.pk}/edit")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(factories.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".connection-status")).to_have_text("Connected")
        expect(page.locator(".whoami")).to_have_text(username)

    def sign_out() -> None:
        page.goto("/trips/")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/trips/sign-in/"))

    sign_in("alice")
    go_offline(page)
    page.locator('input[name="destination"]').fill("Left waiting by alice")
    expect(page.locator(".outbox-status")).to_have_text("1 change waiting to be sent")
    # A session's page reloaded without network: its token cannot be fetched, and it still
    # shows the trip as alice left it.
    page.reload()
    expect(page.locator('input[name="destination"]')).to_have_value("Left waiting by alice")
    expect(page.locator(".outbox-status")).to_have_text("1 change waiting to be sent")
    expect(page.locator(".whoami")).to_have_text("alice")
    expect(page.locator(".connection-status")).to_have_text("Offline")
    page.close()  # the tab is closed before the network is back
    context.set_offline(False)

    page = context.new_page()
    sign_out()
    sign_in("bob")
    expect(page.locator('input[name="destination"]')).to_have_value(destination)
    expect(page.locator(".outbox-status")).to_be_hidden()
    # Bob's own edit is answered after anything his page sent before it, on the same socket.
    page.locator('input[name="tripName"]').fill("Bob was here")
    expect(page.locator(".save-state")).to_have_text("Saved")
    trip.refresh_from_db()
    assert (trip.name, trip.destination) == ("Bob was here", destination)

    # What the worker kept: the trip page and its static files, never a token or an API answer
    # (this session page fetched /trips/session-token/, the sign-in posted a password).
    kept = kept_by_the_service_worker(page)
    assert f"/trips/{trip.pk}/edit" in kept and "/static/tripsage/js/outbox.js" in kept
    unexpected = [
        p for p in kept if not (p == f"/trips/{trip.pk}/edit" or p.startswith("/static/tripsage/"))
    ]
    assert unexpected == []

    sign_out()
    # Signing out forgot the kept page (the sign-in page's own static files may be kept anew).
    assert f"/trips/{trip.pk}/edit" not in kept_by_the_service_worker(page)
    sign_in("alice")
    expect(page.locator('input[name="destination"]')).to_have_value("Left waiting by alice")
    expect(page.locator(".save-state")).to_have_text("Saved")
    expect(page.locator(".outbox-status")).to_be_hidden()
    trip.refresh_from_db()
    assert trip.destination == "Left waiting by alice"
    context.close()
