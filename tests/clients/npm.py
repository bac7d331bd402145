"""The JS client's package folder and its npm tooling, for the tests of tests/clients."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "js"


def npm() -> str:
    """The npm executable, or the test fails saying how to install Node.js and npm."""
    found = shutil.which("npm")
    if found is None or shutil.which("node") is None:
        pytest.fail(
            "The client's package checks need Node.js 20 or newer and npm (Debian: apt-get "
            "install nodejs npm).",
            pytrace=False,
        )
    return found


def run(args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command in clients/js."""
    return subprocess.run(
        args, cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, check=False
    )
