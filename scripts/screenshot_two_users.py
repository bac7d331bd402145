"""The README's screenshot: two users editing one trip, side by side (docs/img/two-users.png).

Starts daphne on the embedded defaults with a throw-away SQLite database and the demo data, signs
in as alice and bob in two Chromium contexts, and has them edit and chat. Needs Debian's
Chromium (CHROMIUM, default /usr/bin/chromium) and Pillow (`make install-bench`).
Run: .venv/bin/python scripts/screenshot_two_users.py
"""

from __future__ import annotations

import time
from pathlib import Path

from demo_server import chromium, demo_server, side_by_side  # scripts/ is on sys.path
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "two-users.png"
PORT = 8766


def main() -> None:
    with demo_server(PORT) as base:
        shoot(base)


def shoot(base: str) -> None:
    with sync_playwright() as p:
        browser = chromium(p)
        pages = {}
        for name in ("alice", "bob"):
            context = browser.new_context(base_url=base, viewport={"width": 900, "height": 720})
            page = context.new_page()
            page.goto("/trips/1/edit")
            page.fill('#signin input[name="username"]', name)
            page.fill('#signin input[name="password"]', "tripsage-demo")
            page.click('#signin button[type="submit"]')
            expect(page.locator(".connection-status")).to_have_text("Connected")
            pages[name] = page
        alice, bob = pages["alice"], pages["bob"]
        expect(alice.locator(".collaborator-count")).to_have_text("2")
        alice.fill('input[name="budget"]', "1450")
        alice.click('button[type="submit"]')
        expect(bob.locator('input[name="budget"]')).to_have_value("1450")
        bob.fill('input[name="chatText"]', "@alice 1450 works for me, booking the train now")
        bob.press('input[name="chatText"]', "Enter")
        expect(alice.locator(".chat-messages li").last).to_contain_text("booking the train")
        alice.click('input[name="tripName"]')
        alice.type('input[name="tripName"]', " + Porto")
        expect(bob.locator(".editing-indicator")).to_be_visible()
        for page in pages.values():
            page.evaluate("window.scrollTo(0, 0)")
        time.sleep(0.3)
        combined = side_by_side((pages["alice"], pages["bob"]), gap=12)
        browser.close()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    combined.save(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
