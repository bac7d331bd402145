"""The pages as an app (issue 17 item 5), in Debian's Chromium against daphne, as two users in
two browser contexts: my trips with roles and who is online, creating a trip, inviting by
username (owners only), the invited user's page, the non-member's page, sign-out and switch of
user, labels and live regions in the accessibility tree, and phone width."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from collaboration.models import Trip, TripMember
from tests import factories
from tests.conftest import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def crew():
    return factories.make_crew()  # alice owner, bob editor, carol viewer


@pytest.fixture
def signed_in(browser: Browser, web: DaphneServer) -> Iterator[Callable[..., Page]]:
    """A page in a browser context of its own, signed in with a session on /trips/sign-in/
    (one user per context), at `then`."""
    contexts: list[BrowserContext] = []

    def opener(username: str, then: str = "/trips/", **context_options: object) -> Page:
        context = browser.new_context(base_url=web.http_url, **context_options)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"/trips/sign-in/?next={then}")
        sign_in(page, username)
        return page

    yield opener
    for context in contexts:
        context.close()


def sign_in(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".nav-user")).to_have_text(username)


def card(page: Page, trip: Trip):
    return page.locator(f'.trip-card[data-trip-id="{trip.pk}"]')


def no_horizontal_overflow(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_my_trips_lists_my_role_and_who_is_online(signed_in, crew):
    alice, _bob, _carol, trip = crew
    other = factories.make_trip(alice)  # alice alone on it
    bob = signed_in("bob", f"/trips/{trip.pk}/edit")
    expect(bob.locator(".connection-status")).to_have_text("Connected")

    page = signed_in("alice")
    expect(card(page, trip).locator(".role-badge")).to_have_text("owner")
    expect(card(page, trip).locator(".members")).to_contain_text("bob (editor)")
    expect(card(page, trip).locator(".members")).to_contain_text("carol (viewer)")
    expect(card(page, trip).locator(".online")).to_contain_text("bob")
    expect(card(page, other).locator(".online")).to_have_text("Online now: nobody")

    carol = signed_in("carol")
    expect(card(carol, trip).locator(".role-badge")).to_have_text("viewer")
    expect(card(carol, other)).to_have_count(0)  # not hers
    # Not an owner: no invitation form.
    expect(card(carol, trip).locator(".invite-form")).to_have_count(0)
    expect(card(page, trip).locator(".invite-form")).to_have_count(1)

    bob.context.close()  # bob leaves: the list says so within a poll or two
    expect(card(page, trip).locator(".online")).to_have_text("Online now: nobody", timeout=15000)


def test_an_owner_creates_a_trip_and_invites_someone_who_then_edits_it(signed_in):
    factories.make_user("dora")
    factories.make_user("eli")
    dora = signed_in("dora")
    expect(dora.locator(".empty")).to_be_visible()
    dora.get_by_label("Name", exact=True).fill("Lisbon in spring")
    dora.get_by_label("Destination").fill("Lisbon")
    dora.get_by_label("Start date").fill("2027-04-02")
    dora.get_by_label("End date").fill("2027-04-09")
    dora.get_by_role("button", name="Create trip").click()
    created = dora.locator(".trip-card", has_text="Lisbon in spring")
    expect(created).to_be_visible()
    expect(created.locator(".role-badge")).to_have_text("owner")
    expect(created.locator(".meta")).to_contain_text("Lisbon · 2027-04-02 to 2027-04-09")
    trip = Trip.objects.get(name="Lisbon in spring")
    assert str(trip.start_date) == "2027-04-02" and str(trip.end_date) == "2027-04-09"

    created.get_by_label("Invite by username").fill("eli")
    created.get_by_label("Role").select_option("editor")
    created.get_by_role("button", name="Invite").click()
    expect(created.locator(".invite-result")).to_have_text("eli is now editor.")
    expect(created.locator(".members")).to_contain_text("eli (editor)")
    assert TripMember.objects.get(trip=trip, user__username="eli").role == "editor"

    # A name nobody has: the page says why, and nothing changed.
    created.get_by_label("Invite by username").fill("nobody-by-this-name")
    created.get_by_role("button", name="Invite").click()
    expect(created.locator(".invite-result")).to_contain_text("no active user with this username")

    eli = signed_in("eli")
    theirs = card(eli, trip)
    expect(theirs.locator(".role-badge")).to_have_text("editor")
    expect(theirs.locator(".invite-form")).to_have_count(0)
    theirs.get_by_role("link", name="Lisbon in spring").click()
    expect(eli.locator(".connection-status")).to_have_text("Connected")
    expect(eli.locator(".role")).to_have_text("(editor)")
    expect(eli.locator('input[name="tripName"]')).to_have_value("Lisbon in spring")
    eli.locator('input[name="destination"]').fill("Lisbon and Sintra")
    expect(eli.locator(".save-state")).to_have_text("Saved")
    trip.refresh_from_db()
    assert trip.destination == "Lisbon and Sintra"
    # The owner's list shows eli online on it.
    expect(card(dora, trip).locator(".online")).to_contain_text("eli", timeout=15000)


def test_a_refused_trip_says_why(signed_in):
    factories.make_user("dora")
    page = signed_in("dora")
    page.get_by_label("Name", exact=True).fill("Backwards")
    page.get_by_label("Start date").fill("2027-05-09")
    page.get_by_label("End date").fill("2027-05-02")
    page.get_by_role("button", name="Create trip").click()
    expect(page.locator(".page-error")).to_contain_text("Could not create the trip")
    expect(page.locator(".page-error")).to_contain_text("end date")
    assert not Trip.objects.filter(name="Backwards").exists()


def test_a_non_member_sees_a_page_that_says_so_and_nothing_to_edit(signed_in, browser, web, crew):
    _, _, _, trip = crew
    factories.make_user("mallory")
    page = signed_in("mallory", f"/trips/{trip.pk}/edit")
    expect(page.get_by_role("heading", level=1)).to_have_text("You are not a member of this trip")
    expect(page.locator("main input, main textarea, main select, main button")).to_have_count(0)
    expect(page.get_by_role("button", name="Save")).to_have_count(0)

    # Signed in on the page itself (a token, no session): the socket's refusal clears the page.
    context = browser.new_context(base_url=web.http_url)
    try:
        tokens = context.new_page()
        tokens.goto(f"/trips/{trip.pk}/edit")
        tokens.fill('#signin input[name="username"]', "mallory")
        tokens.fill('#signin input[name="password"]', factories.PASSWORD)
        tokens.click('#signin button[type="submit"]')
        expect(tokens.locator(".not-member")).to_be_visible()
        expect(tokens.locator(".not-member")).to_contain_text("not a member of this trip")
        expect(tokens.locator("#trip-form")).to_have_count(0)
        expect(tokens.locator("main input, main textarea, main button")).to_have_count(0)
    finally:
        context.close()


def test_sign_out_and_switch_user(signed_in, crew):
    _, _, _, trip = crew
    page = signed_in("alice", f"/trips/{trip.pk}/edit")
    expect(page.locator(".whoami")).to_have_text("alice")
    expect(page.locator(".role")).to_have_text("(owner)")

    # Switch user on the trip page: back on it as bob, whose socket says bob.
    page.get_by_role("button", name="Switch user").click()
    expect(page).to_have_url(re.compile(r"/trips/sign-in/"))
    sign_in(page, "bob")
    expect(page).to_have_url(re.compile(rf"/trips/{trip.pk}/edit$"))
    expect(page.locator(".whoami")).to_have_text("bob")
    expect(page.locator(".role")).to_have_text("(editor)")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/trips/sign-in/$"))
    page.goto("/trips/")
    expect(page).to_have_url(re.compile(r"/trips/sign-in/\?next=/trips/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    # A wrong password is refused, and said.
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")


def test_inputs_are_labelled_and_live_regions_are_in_the_accessibility_tree(signed_in, crew):
    _, _, _, trip = crew
    page = signed_in("alice")
    tree = page.locator("main").aria_snapshot()
    for line in (
        'textbox "Name"',
        'textbox "Destination"',
        'textbox "Start date"',
        'textbox "End date"',
        'textbox "Invite by username"',
        'combobox "Role"',
        'button "Create trip"',
        'button "Invite"',
        'status: "Online now',
    ):
        assert line in tree, f"{line!r} not in:\n{tree}"
    assert page.get_by_role("alert").count() >= 1  # the page's error region
    assert unlabelled_controls(page) == []

    edit = signed_in("bob", f"/trips/{trip.pk}/edit")
    expect(edit.locator(".connection-status")).to_have_text("Connected")
    tree = edit.locator("main").aria_snapshot()
    for line in (
        'textbox "Name"',
        'textbox "Destination"',
        'textbox "Budget"',
        'textbox "Notes"',
        'textbox "Message"',
        'button "Save"',
        "status: Connected",
        'log "Chat messages"',
    ):
        assert line in tree, f"{line!r} not in:\n{tree}"
    assert re.search(r"status:.*\d+ here", tree), tree  # presence, announced politely
    assert edit.locator(".conflict-notice").get_attribute("role") == "alert"
    # A conflict is announced in words, not only shown as a dialog.
    owner = signed_in("alice", f"/trips/{trip.pk}/edit")
    expect(owner.locator(".connection-status")).to_have_text("Connected")
    owner.locator('input[name="budget"]').fill("3000")
    edit.locator('input[name="budget"]').fill("3500")
    expect(owner.get_by_role("alert").filter(has_text="Conflict on budget")).to_have_count(1)
    expect(owner.locator(".conflict-notice")).to_contain_text("Choose which to keep")
    owner.locator(".conflict-dialog .use-mine").click()
    expect(owner.locator(".conflict-notice")).to_have_text("")
    assert edit.locator(".error-message").get_attribute("role") == "alert"
    assert unlabelled_controls(edit) == []


def unlabelled_controls(page: Page) -> list[str]:
    """Every input, select and textarea a user can reach, without a label (hidden inputs and
    submit buttons name themselves)."""
    return page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
             .filter((el) => !["hidden", "submit"].includes(el.type))
             .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
             .map((el) => el.outerHTML)"""
    )


def test_nothing_overflows_at_phone_width(signed_in, browser, web, crew):
    _, _, _, trip = crew
    factories.make_user("mallory")
    page = signed_in("alice", viewport=PHONE)
    expect(card(page, trip).locator(".online")).to_contain_text("Online now")
    assert no_horizontal_overflow(page), page.evaluate("document.documentElement.scrollWidth")
    page.goto(f"/trips/{trip.pk}/edit")
    expect(page.locator(".connection-status")).to_have_text("Connected")
    assert no_horizontal_overflow(page), page.evaluate("document.documentElement.scrollWidth")
    stranger = signed_in("mallory", f"/trips/{trip.pk}/edit", viewport=PHONE)
    assert no_horizontal_overflow(stranger)
    stranger.get_by_role("button", name="Sign out").click()
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert no_horizontal_overflow(stranger)


def test_the_favicon_is_served(signed_in):
    factories.make_user("dora")
    page = signed_in("dora")
    response = page.request.get("/favicon.ico")
    assert response.ok and response.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in response.text()
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon and page.request.get(icon).ok
