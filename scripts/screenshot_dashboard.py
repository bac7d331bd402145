"""The README's screenshot of the admin's realtime dashboard (docs/img/dashboard.png).

Starts daphne on the embedded defaults with a throw-away SQLite database and the demo data, with
metrics flushed every second and a 2-second heartbeat (so latency is measured), then has alice,
bob and carol open sockets of every type over ~25 s, send echoes, typing indicators and the odd
malformed frame (counted as errors), and close a few, so the cards and charts have something to
show. Signs in to the admin as `admin` in Chromium and saves the dashboard. Needs Debian's Chromium
(CHROMIUM, default /usr/bin/chromium).
Run: .venv/bin/python scripts/screenshot_dashboard.py
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets
from demo_server import chromium, demo_server  # scripts/ is on sys.path when run as a script
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "dashboard.png"
PORT = 8767
PASSWORD = "tripsage-demo"
TRAFFIC_SECONDS = 25


def main() -> None:
    with demo_server(PORT, METRICS_FLUSH_SECONDS="1", REALTIME_HEARTBEAT_SECONDS="2") as base:
        shoot(base)


# --- demo traffic: real protocol clients on an event loop in a thread of their own ---------------


def token(base: str, username: str) -> str:
    request = urllib.request.Request(
        f"{base}/api/auth/token/",
        data=json.dumps({"username": username, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access"]


class Client:
    """One authenticated socket that answers pings and sends a little traffic."""

    def __init__(self, ws: Any, path: str) -> None:
        self.ws = ws
        self.path = path
        self.reader = asyncio.create_task(self.read())
        self.n = 0

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.send({"type": "pong", "request_id": message["id"]})
        except websockets.ConnectionClosed:
            pass

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def chatter(self) -> None:
        self.n += 1
        if self.path.startswith("/ws/trips/"):
            await self.send({"type": "echo", "id": f"e-{self.n}", "data": {"n": self.n}})
        elif self.path.startswith("/ws/chat/"):
            await self.send({"type": "typing.start" if self.n % 2 else "typing.stop"})

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.reader, return_exceptions=True)


async def open_client(ws_base: str, path: str, access: str) -> Client:
    ws = await websockets.connect(f"{ws_base}{path}", open_timeout=10)
    await ws.send(json.dumps({"token": access}))
    return Client(ws, path)


async def traffic(base: str, seconds: float) -> list[Client]:
    """Sockets arrive over the first part of the run and a few leave near the end; every open
    socket sends a message or two a second, and now and then a malformed one."""
    ws_base = base.replace("http://", "ws://")
    tokens = {name: token(base, name) for name in ("alice", "bob", "carol")}
    plan = [
        ("alice", "/ws/trips/1/"),
        ("bob", "/ws/trips/1/"),
        ("alice", "/ws/chat/1/"),
        ("alice", "/ws/notifications/"),
        ("carol", "/ws/trips/1/"),
        ("bob", "/ws/chat/1/"),
        ("bob", "/ws/notifications/"),
        ("alice", "/ws/agent-status/"),
        ("carol", "/ws/chat/1/"),
        ("bob", "/ws/trips/1/"),
        ("carol", "/ws/notifications/"),
    ]
    clients: list[Client] = []
    start = time.monotonic()
    tick = 0
    while (elapsed := time.monotonic() - start) < seconds:
        if plan and elapsed >= len(clients) * 1.5:
            name, path = plan.pop(0)
            clients.append(await open_client(ws_base, path, tokens[name]))
        if elapsed > seconds * 0.8 and len(clients) > 8:
            await clients.pop().close()
        for i, client in enumerate(clients):
            if (tick + i) % 3:
                await client.chatter()
        if tick % 17 == 5 and clients:
            await clients[0].send({"type": "no.such.type", "id": f"bad-{tick}"})
        tick += 1
        await asyncio.sleep(0.5)
    return clients


class Traffic:
    def __init__(self, base: str, seconds: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.future = asyncio.run_coroutine_threadsafe(traffic(base, seconds), self.loop)

    def wait(self) -> None:
        self.future.result(timeout=120)

    def close(self) -> None:
        async def close_all() -> None:
            if self.future.done() and not self.future.exception():
                for client in self.future.result():
                    await client.close()

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def shoot(base: str) -> None:
    demo = Traffic(base, TRAFFIC_SECONDS)
    try:
        with sync_playwright() as p:
            browser = chromium(p)
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto("/admin/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", PASSWORD)
            page.click('#login-form input[type="submit"]')
            expect(page.locator("#user-tools")).to_contain_text("admin")
            # The admin's app sidebar folded away: the dashboard gets the width.
            page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
            page.goto("/admin/realtime/dashboard/")
            expect(page.locator(".last-updated")).to_contain_text("Last updated")
            demo.wait()
            time.sleep(2.5)  # the last flush and a refresh of the page
            page.evaluate("window.realtimeDashboard.fetchMetrics()")
            time.sleep(0.5)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
