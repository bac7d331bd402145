"""The first admin from the environment (ensure_admin), and seed_demo refusing production."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
STRONG = "correct horse battery staple 42"


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", STRONG)
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.com")
    return monkeypatch


def _run(*args: str) -> str:
    out = StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


def test_creates_a_superuser_who_can_sign_in(admin_env: pytest.MonkeyPatch) -> None:
    assert "Created the admin 'root'" in _run()
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.is_staff and user.email == "root@example.com"
    assert user.check_password(STRONG)


def test_a_second_run_leaves_the_user_and_password_as_they_are(
    admin_env: pytest.MonkeyPatch,
) -> None:
    _run()
    admin_env.setenv("DJANGO_SUPERUSER_PASSWORD", "another long passphrase 77")
    assert "User 'root' exists; left unchanged" in _run()
    assert get_user_model().objects.get(username="root").check_password(STRONG)
    assert get_user_model().objects.filter(username="root").count() == 1


def test_reset_password_sets_the_password_from_the_environment(
    admin_env: pytest.MonkeyPatch,
) -> None:
    _run()
    admin_env.setenv("DJANGO_SUPERUSER_PASSWORD", "another long passphrase 77")
    assert "Reset the password of 'root'" in _run("--reset-password")
    assert (
        get_user_model().objects.get(username="root").check_password("another long passphrase 77")
    )


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("", "No admin password: set DJANGO_SUPERUSER_PASSWORD"),
        ("short", "This password is too short"),
        ("password123", "This password is too common"),
        ("48213957261", "This password is entirely numeric"),
    ],
)
def test_a_missing_or_weak_password_is_refused_with_the_validators_reasons(
    admin_env: pytest.MonkeyPatch, password: str, says: str
) -> None:
    admin_env.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    with pytest.raises(CommandError, match=says):
        _run()
    assert not get_user_model().objects.filter(username="root").exists()


def test_a_missing_user_name_is_refused(admin_env: pytest.MonkeyPatch) -> None:
    admin_env.delenv("DJANGO_SUPERUSER_USERNAME")
    with pytest.raises(CommandError, match="set DJANGO_SUPERUSER_USERNAME"):
        _run()


def test_options_name_the_user_instead_of_the_environment(admin_env: pytest.MonkeyPatch) -> None:
    _run("--username", "ops", "--email", "ops@example.com")
    assert get_user_model().objects.get(username="ops").email == "ops@example.com"
    assert not get_user_model().objects.filter(username="root").exists()


def _manage_under_production(command: str, **extra: str) -> subprocess.CompletedProcess[str]:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tripsage.settings.production",
        DJANGO_SECRET_KEY="django-" + "s3cr3t-" * 8,
        JWT_SIGNING_KEY="jwt-" + "k3y-" * 13,
        PUBLIC_URL="https://trips.example.com",
        DATABASE_URL=(
            f"postgres://{quote(db['USER'] or 'postgres')}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
        **extra,
    )
    return subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_seed_demo_refuses_production_settings_and_creates_nobody() -> None:
    if connection.vendor != "postgresql":
        pytest.fail("this test runs a production process: it needs DATABASE_URL=postgres://...")
    result = _manage_under_production("seed_demo")
    assert result.returncode != 0
    assert "seed_demo refuses to run under production settings" in result.stderr
    assert "ensure_admin" in result.stderr
    assert not get_user_model().objects.exists()


@pytest.mark.django_db(transaction=True)
def test_ensure_admin_runs_under_production_settings() -> None:
    if connection.vendor != "postgresql":
        pytest.fail("this test runs a production process: it needs DATABASE_URL=postgres://...")
    result = _manage_under_production(
        "ensure_admin", DJANGO_SUPERUSER_USERNAME="root", DJANGO_SUPERUSER_PASSWORD=STRONG
    )
    assert result.returncode == 0, result.stderr
    assert get_user_model().objects.get(username="root").is_superuser
