"""Settings from the environment: the channel layer, production's public URL, secrets and
passwords."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from realtime.checks import require_channel_layer
from realtime.redis_clients import redis_host
from tripsage.public_url import parse_public_url
from tripsage.settings.base import DEV_JWT_SIGNING_KEY, DEV_SECRET_KEY

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
    """`expr` printed by a fresh interpreter with `module` as its settings: the module is loaded
    when `expr` first reads `settings`. No django.setup() (the apps' loading is five times
    the cost, and nothing here needs it): an expression that must load the settings reads one."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DJANGO_", "JWT_", "REDIS", "DATABASE", "PUBLIC_URL", "ALLOWED_HOSTS", "CSRF_")
        )
        and not k.startswith(("SESSION_", "SECURE_", "REALTIME_ALLOW"))
    }
    clean.update(env, DJANGO_SETTINGS_MODULE=module)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"from django.conf import settings; print({expr})",
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


PRODUCTION = {
    "DJANGO_SECRET_KEY": "django-" + "s3cr3t-" * 8,
    "JWT_SIGNING_KEY": "jwt-" + "k3y-" * 13,
    "PUBLIC_URL": "https://trips.example.com",
    "DATABASE_URL": "postgres://u:p@db:5432/tripsage",
    "REDIS_URL": "redis://cache:6379/0",
}


WEB_SETTINGS = (
    "settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS, settings.REALTIME_ALLOWED_ORIGINS, "
    "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS"
)


def _production(expr: str, **env: str) -> subprocess.CompletedProcess:
    return _settings_in_subprocess("tripsage.settings.production", {**PRODUCTION, **env}, expr)


def test_production_reads_everything_from_the_environment() -> None:
    result = _production(
        "settings.DEBUG, settings.ALLOWED_HOSTS, settings.REALTIME_ALLOWED_ORIGINS, "
        "settings.DATABASES['default']['HOST'], settings.CHANNEL_LAYERS['default']['BACKEND']"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "False ['trips.example.com'] ['https://trips.example.com'] db "
        "realtime.layers.FanoutChannelLayer"
    )


def test_production_refuses_to_start_without_a_public_url() -> None:
    result = _production("settings.ALLOWED_HOSTS", PUBLIC_URL="")
    assert result.returncode != 0
    assert "PUBLIC_URL is required in production" in result.stderr


def test_an_https_public_url_gives_hosts_origins_secure_cookies_and_hsts() -> None:
    result = _production(
        WEB_SETTINGS,
        PUBLIC_URL="https://Trips.Example.com:443/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "['trips.example.com'] ['https://trips.example.com'] ['https://trips.example.com'] "
        "True True 31536000"
    )


def test_a_plain_http_public_url_turns_secure_cookies_and_hsts_off() -> None:
    result = _production(
        WEB_SETTINGS,
        PUBLIC_URL="http://localhost:8080",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "['localhost'] ['http://localhost:8080'] ['http://localhost:8080'] False False 0"
    )


def test_listed_hosts_and_origins_are_added_to_the_public_urls_and_explicit_flags_win() -> None:
    result = _production(
        "settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS, settings.REALTIME_ALLOWED_ORIGINS,"
        " settings.SESSION_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS",
        PUBLIC_URL="http://[::1]:8080",
        ALLOWED_HOSTS="web,[::1]",
        CSRF_TRUSTED_ORIGINS="https://admin.example.com",
        REALTIME_ALLOWED_ORIGINS="https://app.example.com",
        SESSION_COOKIE_SECURE="true",
        SECURE_HSTS_SECONDS="60",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "['[::1]', 'web'] ['http://[::1]:8080', 'https://admin.example.com'] "
        "['http://[::1]:8080', 'https://app.example.com'] True 60"
    )


@pytest.mark.parametrize(
    ("module", "env", "expected"),
    [
        ("tripsage.settings.base", {}, "True"),  # make run, on whatever port
        ("tripsage.settings.base", {"PUBLIC_URL": "http://localhost:9000"}, "False"),
        ("tripsage.settings.base", {"REALTIME_ALLOW_SAME_HOST_ORIGIN": "no"}, "False"),
        ("tripsage.settings.production", PRODUCTION, "False"),
        (
            "tripsage.settings.production",
            {**PRODUCTION, "REALTIME_ALLOW_SAME_HOST_ORIGIN": "yes"},
            "True",
        ),
    ],
)
def test_same_host_origins_are_allowed_until_public_url_says_where_users_are(
    module: str, env: dict[str, str], expected: str
) -> None:
    result = _settings_in_subprocess(module, env, "settings.REALTIME_ALLOW_SAME_HOST_ORIGIN")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("trips.example.com", "must start with http:// or https://"),
        ("ftp://trips.example.com", "must start with http:// or https://"),
        ("https://", "has no host name"),
        ("https://trips.example.com/app/", "must be the site's root"),
        ("https://trips.example.com/?a=1", "must be the site's root"),
        ("https://admin:pw@trips.example.com", "must not hold a user name or password"),
        ("https://trips.example.com:99999", "is not a URL"),
    ],
)
def test_a_bad_public_url_is_refused_saying_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        parse_public_url(url)
    assert reason in str(error.value) and "https://trips.example.com" in str(error.value)


def test_production_stops_at_a_bad_public_url() -> None:
    result = _production("settings.ALLOWED_HOSTS", PUBLIC_URL="trips.example.com")
    assert result.returncode != 0
    assert "PUBLIC_URL='trips.example.com' must start with http:// or https://" in result.stderr


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("x", "DJANGO_SECRET_KEY is too weak: it needs at least 50 characters (1 given)"),
        ("ab" * 40, "at least 5 different ones (2 given)"),
        ("django-insecure-" + "q1w2e3r4t5y6" * 4, "must not start with 'django-insecure-'"),
        (DEV_SECRET_KEY, "DJANGO_SECRET_KEY is the development key"),
    ],
)
def test_production_refuses_a_weak_or_known_secret_key(key: str, says: str) -> None:
    result = _production("settings.SECRET_KEY", DJANGO_SECRET_KEY=key)
    assert result.returncode != 0
    assert says in result.stderr and "secrets.token_urlsafe(50)" in result.stderr


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "JWT_SIGNING_KEY is required in production with JWT_ALGORITHM=HS256"),
        ("short", "JWT_SIGNING_KEY is too weak"),
        (PRODUCTION["DJANGO_SECRET_KEY"], "JWT_SIGNING_KEY is the same as DJANGO_SECRET_KEY"),
        (DEV_JWT_SIGNING_KEY, "JWT_SIGNING_KEY is the development JWT key"),
    ],
)
def test_production_signs_jwts_with_a_strong_key_of_their_own(key: str, says: str) -> None:
    result = _production("settings.SIMPLE_JWT['SIGNING_KEY']", JWT_SIGNING_KEY=key)
    assert result.returncode != 0
    assert says in result.stderr


def test_production_signs_hs256_jwts_with_the_jwt_key() -> None:
    result = _production("settings.SIMPLE_JWT['SIGNING_KEY'] == settings.SECRET_KEY")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    result = _production("settings.SIMPLE_JWT['SIGNING_KEY']")
    assert result.stdout.strip() == PRODUCTION["JWT_SIGNING_KEY"]


def test_production_requires_the_key_pair_for_rs256() -> None:
    result = _production("settings.SIMPLE_JWT['ALGORITHM']", JWT_ALGORITHM="RS256")
    assert result.returncode != 0
    assert "JWT_PRIVATE_KEY is required" in result.stderr
    keys = ROOT / "tests" / "keys"
    result = _production(
        "settings.SIMPLE_JWT['ALGORITHM']",
        JWT_ALGORITHM="RS256",
        JWT_SIGNING_KEY="",
        JWT_PRIVATE_KEY_FILE=str(keys / "test-only-private.pem"),
        JWT_PUBLIC_KEY_FILE=str(keys / "test-only-public.pem"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "RS256"


def test_the_development_settings_never_sign_jwts_with_the_django_secret_key() -> None:
    result = _settings_in_subprocess(
        "tripsage.settings.base",
        {"DJANGO_SECRET_KEY": "some-local-key", "JWT_ALGORITHM": "HS256"},
        "settings.SIMPLE_JWT['SIGNING_KEY'] != settings.SECRET_KEY",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


PASSWORD = "p@ss:/#%word"


def test_database_password_is_taken_as_it_is_beside_the_url() -> None:
    result = _production(
        "settings.DATABASES['default']['USER'], settings.DATABASES['default']['PASSWORD'], "
        "settings.DATABASES['default']['HOST'], settings.DATABASES['default']['NAME']",
        DATABASE_URL="postgres://tripsage@db:5432/tripsage",
        DATABASE_PASSWORD=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tripsage {PASSWORD} db tripsage"


def test_an_escaped_password_inside_database_url_is_unescaped() -> None:
    result = _production(
        "settings.DATABASES['default']['PASSWORD'], settings.DATABASES['default']['HOST']",
        DATABASE_URL=f"postgres://tripsage:{quote(PASSWORD, safe='')}@db:5432/tripsage",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{PASSWORD} db"


def test_redis_password_reaches_every_redis_client_url_escaped() -> None:
    result = _production(
        "settings.REDIS_URL, settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address'],"
        " settings.CACHES['default']['LOCATION'], settings.REALTIME_THROTTLE_REDIS_URL",
        REDIS_URL="redis://cache:6379/2",
        REDIS_PASSWORD=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    escaped = f"redis://:{quote(PASSWORD, safe='')}@cache:6379/2"
    assert result.stdout.split() == [escaped] * 4


def test_database_pgbouncer_turns_off_server_side_cursors_and_prepared_statements() -> None:
    result = _production(
        "settings.DATABASES['default'].get('DISABLE_SERVER_SIDE_CURSORS'), "
        "settings.DATABASES['default']['OPTIONS'].get('prepare_threshold', 'absent')",
        DATABASE_URL="postgres://u@db:6432/tripsage?prepare_threshold=5",
        DATABASE_PGBOUNCER="true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True None"


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


def test_server_processes_collect_garbage_at_the_configured_thresholds() -> None:
    loaded = "__import__('tripsage.asgi'), __import__('gc').get_threshold()"
    default = _settings_in_subprocess("tripsage.settings.base", {}, loaded)
    assert default.returncode == 0, default.stderr
    assert "(20000, 20, 20)" in default.stdout
    tuned = _settings_in_subprocess(
        "tripsage.settings.base", {"GC_THRESHOLDS": "700,10,10"}, loaded
    )
    assert "(700, 10, 10)" in tuned.stdout, tuned.stderr
    refused = _settings_in_subprocess(
        "tripsage.settings.base", {"GC_THRESHOLDS": "700,x"}, "settings.DEBUG"
    )
    assert (
        refused.returncode != 0 and "GC_THRESHOLDS=700,x: three positive integers" in refused.stderr
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REALTIME_OPENING_WAIT_SECONDS": "5"}, "REALTIME_OPENING_WAIT_SECONDS=5"),
        ({"REALTIME_MAX_WAITING_SOCKETS": "-1"}, "REALTIME_MAX_WAITING_SOCKETS=-1"),
        ({"DATABASE_THREADS": "4", "DATABASE_CATCH_UP_THREADS": "5"}, "from 1 to DATABASE_THREADS"),
        ({"DATABASE_CATCH_UP_THREADS": "0"}, "DATABASE_CATCH_UP_THREADS=0"),
        ({"REALTIME_RESUME_FROM_MEMORY_EVENTS": "-1"}, "REALTIME_RESUME_FROM_MEMORY_EVENTS=-1"),
    ],
)
def test_storm_settings_out_of_range_are_refused_by_name(env: dict[str, str], says: str) -> None:
    result = _settings_in_subprocess("tripsage.settings.base", env, "settings.DEBUG")
    assert result.returncode != 0
    assert says in result.stderr


def test_storm_settings_defaults() -> None:
    result = _settings_in_subprocess(
        "tripsage.settings.base",
        {"DATABASE_THREADS": "8"},
        "settings.REALTIME_MAX_OPENING_SOCKETS, settings.REALTIME_OPENING_WAIT_SECONDS, "
        "settings.DATABASE_CATCH_UP_THREADS, settings.REALTIME_RESUME_FROM_MEMORY_EVENTS",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["32", "3.0", "2", "200"]


def test_the_sign_in_budget_is_ten_a_minute_and_a_bad_one_stops_start_up() -> None:
    result = _settings_in_subprocess(
        "tripsage.settings.base", {}, "settings.SIGN_IN_RATE, settings.REST_RATE_USER"
    )
    assert result.returncode == 0, result.stderr
    # Stricter than what the REST throttles alone let an anonymous caller try on the token
    # endpoint, and shared with it (tests/collaboration/test_sign_in_limits.py).
    assert result.stdout.split() == ["10/min", "600/min"]
    refused = _settings_in_subprocess(
        "tripsage.settings.base", {"SIGN_IN_RATE": "ten a minute"}, "settings.SIGN_IN_RATE"
    )
    assert refused.returncode != 0
    assert "SIGN_IN_RATE='ten a minute'" in refused.stderr
    assert "like 10/min" in refused.stderr
