"""REDIS_PASSWORD against a real redis-server that requires a password full of URL syntax."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "p@ss:/#%word"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server of this module's own on a free port, requiring PASSWORD."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis-password")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=2)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"redis-server on {port} never answered", pytrace=False)
    yield port
    process.terminate()
    process.wait(timeout=10)


# What a server process does with Redis at start-up and then: the start-up check, the channel
# layer's group round trip, and the cache the REST throttles count in.
PROBE = """
import asyncio, django
django.setup()
from channels.layers import get_channel_layer
from django.core.cache import cache
from realtime.checks import require_channel_layer

require_channel_layer()
cache.set("password-probe", "cached", 30)
print(cache.get("password-probe"))

async def round_trip():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("password-probe", channel)
    await layer.group_send("password-probe", {"type": "probe.message", "text": "delivered"})
    message = await asyncio.wait_for(layer.receive(channel), 10)
    print(message["text"])

asyncio.run(round_trip())
"""


def _probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REDIS")}
    clean.update(env, DJANGO_SETTINGS_MODULE="tripsage.settings.base")
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_redis_password_given_apart_reaches_the_layer_and_the_cache(locked_redis: int) -> None:
    result = _probe(
        {"REDIS_URL": f"redis://127.0.0.1:{locked_redis}/0", "REDIS_PASSWORD": PASSWORD}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cached", "delivered"]


def test_an_escaped_password_inside_redis_url_works(locked_redis: int) -> None:
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{locked_redis}/0"
    result = _probe({"REDIS_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cached", "delivered"]


def test_without_the_password_the_server_refuses_to_start(locked_redis: int) -> None:
    result = _probe({"REDIS_URL": f"redis://127.0.0.1:{locked_redis}/0"})
    assert result.returncode != 0
    assert f"127.0.0.1:{locked_redis}" in result.stderr
    assert PASSWORD not in result.stderr
