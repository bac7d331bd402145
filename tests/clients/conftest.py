"""The JS client's devDependencies, installed once for the tests of tests/clients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clients.npm import PACKAGE, npm, run


def _installed_as_locked(node_modules: Path) -> bool:
    """Whether node_modules holds what package-lock.json pins: npm's record of the install
    (node_modules/.package-lock.json) names every package the lock does, at its version. Compared
    by content, not by date: a fresh checkout (or a git worktree sharing an install) has a lock
    newer than an install that matches it."""
    record = node_modules / ".package-lock.json"
    if not record.exists():
        return False
    locked = json.loads((PACKAGE / "package-lock.json").read_text())["packages"]
    installed = json.loads(record.read_text()).get("packages", {})
    for path, entry in locked.items():
        if not path:
            continue  # the package itself
        if path not in installed:
            if entry.get("optional"):
                continue  # another platform's binary
            return False
        if installed[path].get("version") != entry.get("version"):
            return False
    return True


@pytest.fixture(scope="session")
def dev_dependencies() -> Path:
    """clients/js/node_modules as package-lock.json pins it (npm ci when missing or stale)."""
    executable = npm()
    node_modules = PACKAGE / "node_modules"
    if not _installed_as_locked(node_modules):
        result = run([executable, "ci", "--no-audit", "--no-fund"])
        assert result.returncode == 0, (
            "npm ci in clients/js failed (it needs the npm registry or a warm npm cache):\n"
            + result.stdout
            + result.stderr
        )
    return node_modules
