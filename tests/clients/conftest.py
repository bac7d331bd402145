"""Node, npm and clients/js's devDependencies for the client's package checks and its Jest run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"


@pytest.fixture(scope="session")
def npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(
            "The client's package checks need Node.js 20 or newer and npm (Debian: apt-get "
            "install nodejs npm).",
            pytrace=False,
        )
    return npm


@pytest.fixture(scope="session")
def dev_dependencies(npm: str) -> Path:
    """clients/js/node_modules as package-lock.json pins it (npm ci when missing or stale)."""
    installed = PACKAGE / "node_modules" / ".package-lock.json"
    lock = PACKAGE / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=PACKAGE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            "npm ci in clients/js failed (it needs the npm registry or a warm npm cache):\n"
            + result.stdout
            + result.stderr
        )
    return PACKAGE / "node_modules"
