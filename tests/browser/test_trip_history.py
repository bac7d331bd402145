"""The trip page's history panel and merges (issue 18, parts 1 and 2, the page's side), in Debian's
Chromium against daphne: a field's changes from GET /api/trips/<id>/history/ newest first with
who, how and before -> after, "Load more", and "Restore" as an ordinary edit that both users see;
an edit merged by the server shows the merged text and says with whose change."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from collaboration.models import Trip
from collaboration.services.trips import trip_update
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crew():
    return factories.make_crew()  # alice owner, bob editor, carol viewer


def change(trip: Trip, user, field: str, value: str) -> None:
    """A change as any client's would be made (the socket's and REST's service)."""
    trip.refresh_from_db()
    trip_update(
        trip_id=trip.pk,
        actor=user,
        update_id=uuid.uuid4(),
        field=field,
        value=value,
        base_version=trip.version,
    )


def test_history_lists_a_fields_changes_newest_first_and_restore_is_an_edit_both_see(
    web, open_page, crew
):
    alice, bob, _, trip = crew
    change(trip, alice, "destination", "Stop 1")
    for stop in range(2, 23):
        change(trip, bob, "destination", f"Stop {stop}")
    change(trip, bob, "budget", "900")  # another field: not in the destination's history

    page = open_page(web, trip.pk, "alice")
    other = open_page(web, trip.pk, "bob")
    button = page.get_by_role("button", name="History of Destination")
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    panel = page.locator(".history-panel")
    expect(panel.locator("#history-heading")).to_have_text("History of Destination")
    entries = panel.locator(".history-entry:not(.history-original)")
    expect(entries).to_have_count(20)  # one page
    newest = entries.first
    expect(newest.locator(".history-by")).to_have_text("bob")
    expect(newest.locator(".history-source")).to_have_text("edit")
    expect(newest.locator(".history-before")).to_have_text("Stop 21")
    expect(newest.locator(".history-after")).to_have_text("Stop 22")
    expect(newest.get_by_role("button", name="Restore Destination to Stop 22")).to_be_disabled()
    expect(panel.locator(".history-status")).to_contain_text("20 changes of Destination")

    panel.get_by_role("button", name="Load more").click()
    expect(entries).to_have_count(22)
    expect(panel.get_by_role("button", name="Load more")).to_be_hidden()
    oldest = entries.last
    expect(oldest.locator(".history-by")).to_have_text("alice")
    expect(oldest.locator(".history-before")).to_have_text("—")  # empty before
    expect(oldest.locator(".history-after")).to_have_text("Stop 1")
    texts = entries.locator(".history-after").all_text_contents()
    assert texts == [f"Stop {stop}" for stop in range(22, 0, -1)]

    panel.get_by_role("button", name="Restore Destination to Stop 5").click()
    expect(page.locator('input[name="destination"]')).to_have_value("Stop 5")
    expect(other.locator('input[name="destination"]')).to_have_value("Stop 5")
    expect(page.locator(".save-state")).to_have_text("Saved")
    trip.refresh_from_db()
    assert trip.destination == "Stop 5"
    # The open panel shows the restore as the newest change, alice's.
    expect(newest.locator(".history-after")).to_have_text("Stop 5")
    expect(newest.locator(".history-before")).to_have_text("Stop 22")
    expect(newest.locator(".history-by")).to_have_text("alice")
    expect(entries).to_have_count(20)  # the first page again

    panel.get_by_role("button", name="Close").click()
    expect(panel).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")


def test_a_viewer_sees_the_history_but_cannot_restore(web, open_page, crew):
    alice, _, _, trip = crew
    change(trip, alice, "notes", "Pack light")
    change(trip, alice, "notes", "Pack light, <b>bring</b> a coat")
    viewer = open_page(web, trip.pk, "carol")
    viewer.get_by_role("button", name="History of Notes").click()
    entries = viewer.locator(".history-panel .history-entry:not(.history-original)")
    expect(entries).to_have_count(2)
    # Rendered as text: the markup is shown, not interpreted.
    expect(entries.first.locator(".history-after")).to_have_text("Pack light, <b>bring</b> a coat")
    expect(entries.first.locator("b")).to_have_count(0)
    for button in viewer.locator(".history-panel .history-restore").all():
        expect(button).to_be_disabled()


def test_an_edit_made_offline_on_other_lines_of_the_notes_is_merged_and_says_with_whom(
    web, open_page, crew
):
    alice, _, _, trip = crew
    change(trip, alice, "notes", "Day 1: Lisbon\nDay 2: Sintra\nDay 3: Porto")
    page = open_page(web, trip.pk, "alice")
    other = open_page(web, trip.pk, "bob")
    assert page.evaluate("() => window.tripsage.offlineReady") is True

    page.context.set_offline(True)
    expect(page.locator(".connection-status")).to_have_text("Offline")
    mine, theirs = "Day 1: Lisbon, Alfama", "Day 3: Porto, Ribeira"
    page.locator('textarea[name="notes"]').fill(f"{mine}\nDay 2: Sintra\nDay 3: Porto")
    expect(page.locator(".outbox-status")).to_have_text("1 change waiting to be sent")
    other.locator('textarea[name="notes"]').fill(f"Day 1: Lisbon\nDay 2: Sintra\n{theirs}")
    expect(other.locator(".save-state")).to_have_text("Saved")

    page.context.set_offline(False)
    merged = f"{mine}\nDay 2: Sintra\n{theirs}"
    expect(page.locator('textarea[name="notes"]')).to_have_value(merged)
    expect(page.locator('.field-note[data-for="notes"]')).to_have_text("Merged with bob's change")
    expect(page.locator(".conflict-dialog")).to_be_hidden()
    expect(other.locator('textarea[name="notes"]')).to_have_value(merged)
    trip.refresh_from_db()
    assert trip.notes == merged

    page.get_by_role("button", name="History of Notes").click()
    newest = page.locator(".history-panel .history-entry").first
    expect(newest.locator(".history-source")).to_have_text("merge")
    expect(newest.locator(".history-by")).to_have_text("alice")
    expect(newest.locator(".history-after")).to_have_text(re.compile("Alfama[\\s\\S]*Ribeira"))
