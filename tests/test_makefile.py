"""The Makefile's demo targets, read with `make -n` and run against a copy: `make run`'s host and
port, and `make reset` deleting what `make run` made (the settings' own paths)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# Variables a developer's shell may hold that would change what the targets print.
_CLEARED = ("PORT", "HOST", "DATABASE_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _CLEARED}
    env.update(extra)
    return env


def _make_n(*args: str, **env: str) -> str:
    result = subprocess.run(
        ["make", "-n", *args], cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _daphne_line(output: str) -> str:
    return next(line for line in output.splitlines() if "daphne -b" in line)


def test_make_run_defaults_to_loopback_port_8000():
    output = _make_n("run")
    assert _daphne_line(output).endswith("daphne -b 127.0.0.1 -p 8000 tripsage.asgi:application")
    assert "http://127.0.0.1:8000/trips/1/edit" in output
    assert ":8080" not in output  # the file's PORT is make cluster's default, not run's


def test_make_run_binds_and_prints_the_given_host_and_port():
    output = _make_n("run", "PORT=9123", "HOST=0.0.0.0")
    assert _daphne_line(output).endswith("daphne -b 0.0.0.0 -p 9123 tripsage.asgi:application")
    # A wildcard bind is opened on loopback; every hint uses the chosen port.
    assert "http://127.0.0.1:9123/ " in output
    assert "http://127.0.0.1:9123/api/auth/token/" in output
    assert "ws://127.0.0.1:9123/ws/trips/1/" in output
    assert "ALLOWED_HOSTS=" in output  # how other machines may reach it
    assert ":8000" not in output


def test_make_run_takes_port_from_the_environment_but_not_host():
    """tcsh exports HOST as the machine's name: binding to it would surprise."""
    output = _make_n("run", PORT="9124", HOST="some-machine")
    assert _daphne_line(output).endswith("daphne -b 127.0.0.1 -p 9124 tripsage.asgi:application")


def test_make_run_brackets_an_ipv6_address_in_its_urls():
    output = _make_n("run", "HOST=::1", "PORT=9125")
    assert _daphne_line(output).endswith("daphne -b ::1 -p 9125 tripsage.asgi:application")
    assert "http://[::1]:9125/trips/1/edit" in output


def test_make_cluster_keeps_its_own_default_port_8080():
    assert "--port 8080" in _make_n("cluster")
    assert "--port 9126" in _make_n("cluster", "PORT=9126")


def _demo_paths() -> tuple[Path, Path]:
    """The demo's SQLite file and collected static files, as `make run` sees the settings."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps([settings.DATABASES['default']['NAME'], str(settings.STATIC_ROOT)]))"
    )
    env = _env(DJANGO_SETTINGS_MODULE="tripsage.settings.base")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    database, static = json.loads(result.stdout)
    return Path(database), Path(static)


def test_make_reset_removes_the_settings_database_and_static_files():
    database, static = _demo_paths()
    removed = [
        word
        for line in _make_n("reset").splitlines()
        if line.startswith("rm ")
        for word in line.split()[2:]
    ]
    assert database.relative_to(ROOT).as_posix() in removed
    assert static.relative_to(ROOT).as_posix() in removed


def test_make_reset_deletes_the_demo_files_of_a_copy_and_nothing_else(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    database, static = _demo_paths()
    made = [tmp_path / database.name, tmp_path / f"{database.name}-journal"]
    static_copy = tmp_path / static.name
    (static_copy / "tripsage").mkdir(parents=True)
    (static_copy / "tripsage" / "app.css").write_text("body {}")
    kept = tmp_path / "manage.py"
    for path in [*made, kept]:
        path.write_text("x")

    refused = subprocess.run(
        ["make", "reset"],
        cwd=tmp_path,
        env=_env(DATABASE_URL="postgres://u@db/x"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "DATABASE_URL is set" in refused.stderr
    assert all(path.exists() for path in made)

    result = subprocess.run(
        ["make", "reset"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in made)
    assert not static_copy.exists()
    assert kept.exists()
