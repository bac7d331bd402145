"""The README's test command: finds Redis (REDIS_URL, then 127.0.0.1:6379, then a private
redis-server), then runs pytest with whatever arguments it was given; with none (the whole suite)
it first runs the browser client's unit tests with Node. The client's live tests, type check,
`npm pack` check and the seed's Jest tests are pytest tests (tests/browser/test_js_client.py,
tests/clients/)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_private_redis() -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="tripsage-redis-")
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _answers(url):
            return url, process
        time.sleep(0.1)
    process.kill()
    sys.exit(f"Started redis-server on port {port} but it never answered.")


ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    private: subprocess.Popen[bytes] | None = None
    url = os.environ.get("REDIS_URL")
    if url:
        if not _answers(url):
            sys.exit(f"REDIS_URL={url} does not answer: start that Redis or unset REDIS_URL.")
    elif _answers("redis://127.0.0.1:6379/0"):
        url = "redis://127.0.0.1:6379/0"
    elif shutil.which("redis-server"):
        url, private = _start_private_redis()
        print(f"Using a private redis-server at {url}", flush=True)
    else:
        sys.exit(
            "The tests need Redis and none answers on 127.0.0.1:6379. Install it "
            "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), "
            "start it, or set REDIS_URL."
        )
    env = dict(os.environ, REDIS_URL=url)
    # A prefix of its own, so a dev server on the same Redis never sees test traffic.
    env.setdefault("CHANNEL_LAYER_PREFIX", f"tripsage-test-{uuid.uuid4().hex[:8]}")
    try:
        if not sys.argv[1:]:
            # The whole suite: the browser client's unit tests first (Node's own test runner).
            node = shutil.which("node")
            if node is None:
                sys.exit(
                    "The browser client's tests need Node.js 20 or newer (Debian: apt-get "
                    "install nodejs)."
                )
            # Unit tests only: the live ones (test/integration/) run against a daphne of their
            # own in pytest (tests/browser/test_js_client.py), instead of skipping here.
            unit_tests = sorted((ROOT / "clients" / "js" / "test").glob("*.test.js"))
            print("node --test clients/js/test/*.test.js", flush=True)
            if subprocess.call([node, "--test", *map(str, unit_tests)]) != 0:
                return 1
        return subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]], env=env)
    finally:
        if private is not None:
            private.terminate()
            private.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
