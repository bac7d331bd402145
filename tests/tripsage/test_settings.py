"""Settings from the environment: the channel layer, production's required secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from realtime.checks import require_channel_layer
from realtime.redis_clients import redis_host

ROOT = Path(__file__).resolve().parents[2]


def test_redis_layer_is_used_with_explicit_pool_settings() -> None:
    layer = settings.CHANNEL_LAYERS["default"]
    expected = {
        "fanout": "realtime.layers.FanoutChannelLayer",
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "core": "channels_redis.core.RedisChannelLayer",
    }
    assert layer["BACKEND"] == expected[os.environ.get("REDIS_CHANNEL_LAYER", "fanout")]
    host = layer["CONFIG"]["hosts"][0]
    assert host["address"] == os.environ["REDIS_URL"]
    assert host["socket_timeout"] is None  # channels_redis issue 422
    assert host["max_connections"] >= 500


def _settings_in_subprocess(
    module: str, env: dict[str, str], expr: str
) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "JWT_", "REDIS", "DATABASE"))
    }
    clean.update(env, DJANGO_SETTINGS_MODULE=module)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print({expr})",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_defaults_need_no_environment() -> None:
    result = _settings_in_subprocess(
        "tripsage.settings.base",
        {},
        "settings.CHANNEL_LAYERS['default']['BACKEND'], settings.DATABASES['default']['ENGINE']",
    )
    assert result.returncode == 0, result.stderr
    assert "InMemoryChannelLayer" in result.stdout and "sqlite3" in result.stdout


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _settings_in_subprocess("tripsage.settings.production", {}, "settings.SECRET_KEY")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_production_reads_everything_from_the_environment() -> None:
    env = {
        "DJANGO_SECRET_KEY": "s" * 50,
        "ALLOWED_HOSTS": "trips.example.com",
        "DATABASE_URL": "postgres://u:p@db:5432/tripsage",
        "REDIS_URL": "redis://cache:6379/0",
    }
    result = _settings_in_subprocess(
        "tripsage.settings.production",
        env,
        "settings.DEBUG, settings.ALLOWED_HOSTS, settings.REALTIME_ALLOWED_ORIGINS, "
        "settings.DATABASES['default']['HOST'], settings.CHANNEL_LAYERS['default']['BACKEND']",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "False ['trips.example.com'] ['https://trips.example.com'] db "
        "realtime.layers.FanoutChannelLayer"
    )


def test_unreachable_redis_fails_at_start_up_with_what_to_do(settings) -> None:
    settings.REDIS_URL = "redis://user:hunter2@127.0.0.1:1/0"
    settings.REDIS_HOST = {"address": settings.REDIS_URL}  # as base.py derives it
    with pytest.raises(ImproperlyConfigured) as error:
        require_channel_layer()
    message = str(error.value)
    assert "127.0.0.1:1" in message and "unset REDIS_URL" in message
    assert "hunter2" not in message


def test_unreachable_sentinels_fail_at_start_up_naming_them(settings) -> None:
    settings.REDIS_URL = "redis://:hunter2@sentinel/0"
    settings.REDIS_HOST = redis_host(settings.REDIS_URL, [("127.0.0.1", 1)], "tripsage")
    with pytest.raises(ImproperlyConfigured) as error:
        require_channel_layer()
    message = str(error.value)
    assert "'tripsage' of the Sentinels 127.0.0.1:1" in message
    assert "hunter2" not in message
