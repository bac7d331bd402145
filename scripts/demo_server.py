"""A throw-away demo server for the README's screenshots: embedded defaults (SQLite in a temp
directory, in-process layer), migrated, with the demo data of `make run`, daphne on `port`; and
what the screenshot scripts share: Debian's Chromium, pages shot side by side."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def demo_server(port: int, **env_overrides: str) -> Iterator[str]:
    """Yields the server's base URL; stops it on exit."""
    workdir = tempfile.mkdtemp(prefix="tripsage-shot-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tripsage.settings.base",
        "DATABASE_URL": f"sqlite:///{workdir}/db.sqlite3",
        "REALTIME_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
        **env_overrides,
    }
    env.pop("REDIS_URL", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "tripsage.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,  # the access log of every request
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def chromium(playwright: Any) -> Any:
    """Debian's Chromium (CHROMIUM, default /usr/bin/chromium), never a downloaded browser."""
    return playwright.chromium.launch(
        executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"]
    )


def side_by_side(pages: Iterable[Any], gap: int) -> Any:
    """A screenshot of each page, joined left to right on a grey ground (a Pillow image)."""
    from PIL import Image  # make install-bench

    shots = []
    for page in pages:
        path = Path(tempfile.mkdtemp()) / "shot.png"
        page.screenshot(path=str(path))
        shots.append(Image.open(path))
    width = sum(s.width for s in shots) + gap * (len(shots) - 1)
    combined = Image.new("RGB", (width, max(s.height for s in shots)), "#9aa4b2")
    x = 0
    for shot in shots:
        combined.paste(shot, (x, 0))
        x += shot.width + gap
    return combined
