"""The README's screenshots of the pages (issue 17): my trips, the trip page, and both at phone
width (docs/img/pages-trips.png, pages-trip-edit.png, pages-phone.png).

Starts daphne on the embedded defaults with a throw-away SQLite database and the demo data, signs
in as alice and bob (sessions, /trips/sign-in/) in two Chromium contexts: bob is on trip 1's
page while alice looks at her trips. Needs Debian's Chromium (CHROMIUM, default
/usr/bin/chromium) and Pillow (`make install-bench`).
Run: .venv/bin/python scripts/screenshot_pages.py
"""

from __future__ import annotations

from pathlib import Path

from demo_server import chromium, demo_server, side_by_side  # scripts/ is on sys.path
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
PORT = 8767
PASSWORD = "tripsage-demo"


def main() -> None:
    with demo_server(PORT) as base:
        shoot(base)


def signed_in(browser: Browser, base: str, username: str, then: str, **options: object) -> Page:
    context = browser.new_context(base_url=base, **options)
    page = context.new_page()
    page.goto(f"/trips/sign-in/?next={then}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".nav-user")).to_have_text(username)
    return page


def shoot(base: str) -> None:
    with sync_playwright() as p:
        browser = chromium(p)
        desktop = {"viewport": {"width": 1100, "height": 760}}
        phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2}
        bob = signed_in(browser, base, "bob", "/trips/1/edit", **desktop)
        expect(bob.locator(".connection-status")).to_have_text("Connected")
        alice = signed_in(browser, base, "alice", "/trips/", **desktop)
        alice.get_by_label("Name", exact=True).fill("Weekend in Porto")
        alice.get_by_label("Destination").fill("Porto")
        alice.get_by_label("Start date").fill("2027-05-14")
        alice.get_by_label("End date").fill("2027-05-16")
        alice.get_by_role("button", name="Create trip").click()
        expect(alice.locator(".trip-card", has_text="Weekend in Porto")).to_be_visible()
        expect(alice.locator('.trip-card[data-trip-id="1"] .online')).to_contain_text("bob")
        alice.screenshot(path=str(OUT / "pages-trips.png"), full_page=True)

        alice.goto("/trips/1/edit")
        expect(alice.locator(".collaborator-count")).to_have_text("2")
        bob.click('input[name="destination"]')
        bob.type('input[name="destination"]', " and Porto")
        expect(alice.locator(".editing-indicator")).to_be_visible()
        alice.screenshot(path=str(OUT / "pages-trip-edit.png"))

        carol = signed_in(browser, base, "carol", "/trips/", **phone)
        expect(carol.locator('.trip-card[data-trip-id="1"] .online')).to_contain_text("alice")
        bob_phone = signed_in(browser, base, "bob", "/trips/1/edit", **phone)
        expect(bob_phone.locator(".connection-status")).to_have_text("Connected")
        combined = side_by_side((carol, bob_phone), gap=24)
        browser.close()
    combined = combined.resize((combined.width // 2, combined.height // 2), Image.LANCZOS)
    combined.save(OUT / "pages-phone.png")
    print(f"wrote {OUT}/pages-trips.png, pages-trip-edit.png, pages-phone.png")


if __name__ == "__main__":
    main()
