"""clients/js as an npm package: its declarations type-check against the typed usage of the seed's
examples (`tsc`), and `npm pack` ships the modules and their declarations and nothing else.

The devDependencies (TypeScript, @types/react, vue) are installed with `npm ci` into
clients/js/node_modules when they are missing or older than package-lock.json (.ci/run installs
them beforehand; docs/client.md, "Type declarations"): the fixture is in conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

from django.apps import apps
from django.contrib.staticfiles import finders

from tests.clients.npm import PACKAGE, npm, run

MODULES = [
    "index",
    "websocket-connection",
    "lifecycle",
    "rate-limiter",
    "error-handler",
    "optimistic",
    "outbox",
    "metrics",
    "react",
    "vue",
]


def test_the_declarations_type_check_against_the_seeds_examples(dev_dependencies: Path) -> None:
    # types-test/usage.ts also holds @ts-expect-error lines: a declaration that grows too loose
    # to reject them fails this as surely as one that rejects the seed's usage.
    tsc = dev_dependencies / ".bin" / "tsc"
    result = run([str(tsc), "--noEmit", "-p", str(PACKAGE)])
    assert result.returncode == 0, result.stdout + result.stderr
    usage = (PACKAGE / "types-test" / "usage.ts").read_text()
    assert "@ts-expect-error" in usage and 'from "@tripsage/realtime-client"' in usage


def test_npm_pack_ships_every_module_with_its_declarations_and_no_tests() -> None:
    result = run([npm(), "pack", "--dry-run", "--json"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    (tarball,) = json.loads(result.stdout)
    files = {entry["path"] for entry in tarball["files"]}
    expected = {f"{module}{suffix}" for module in MODULES for suffix in (".js", ".d.ts")}
    assert files == expected | {"package.json", "README.md", "LICENSE"}, sorted(files)
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert tarball["name"] == manifest["name"] == "@tripsage/realtime-client"
    assert "private" not in manifest
    # Every subpath the exports map names resolves to a shipped file, types first.
    for subpath, target in manifest["exports"].items():
        if isinstance(target, str):
            assert target.removeprefix("./") in files | {"package.json"}, subpath
            continue
        assert list(target) == ["types", "default"], subpath  # "types" must come first
        assert {target["types"].removeprefix("./"), target["default"].removeprefix("./")} <= files
    assert manifest["types"].removeprefix("./") in files


def test_collectstatic_leaves_out_the_clients_node_modules(dev_dependencies: Path) -> None:
    # clients/js is also a static folder (STATICFILES_DIRS): the modules are served, the
    # devDependencies (TypeScript's compiler binary among them) are not collected.
    ignore = apps.get_app_config("staticfiles").ignore_patterns
    served = {
        path
        for finder in finders.get_finders()
        for path, storage in finder.list(ignore)
        if getattr(storage, "prefix", None) == "tripsage/js"
    }
    assert {"index.js", "index.d.ts", "websocket-connection.js"} <= served
    assert dev_dependencies.is_dir()
    unwanted = sorted(p for p in served if p.startswith(("node_modules", "types-test")))
    assert unwanted == [], unwanted[:5]
