"""The seed's Jest tests ("Unit Testing Collaboration Features") run as printed against our client.

clients/js/test/seed-jest/seed.test.ts is the seed's block with a few added lines, each marked
`// EDIT <n>` (the imports the block lacks, and fake timers for the jittered reconnect): the first
test here checks that the file is exactly the seed's block once they are removed, and that they
are the only ones, so the copy cannot drift. The second runs it in Jest (jsdom, Babel) and expects
each of the seed's six tests to pass."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "js"
COPY = PACKAGE / "test" / "seed-jest" / "seed.test.ts"
SEED = ROOT.parent / "shared" / "seed" / "websocket-integration-guide.md"
# The block as the seed prints it, so that the check holds where the seed is not checked out
# beside the repository; where it is, the block is also compared with the seed itself.
SEED_BLOCK_SHA256 = "6e46bcf60695865d630ed26b9db2135cc8abf47826b15db68d610a1c329d22fc"

EDIT = re.compile(r"// EDIT (\d+)(?:: .*)?$")
# Every line added to the seed's block, in order (the file's header says why).
EDITS = [
    'import { WebSocketConnection } from "../../websocket-connection.js"; '
    "// EDIT 1: not imported by the seed",
    'import { OptimisticUpdateManager } from "../../optimistic.js"; // EDIT 1',
    'import type { ConflictResolver, OptimisticUpdate } from "../../optimistic.js"; // EDIT 1',
    "  afterEach(() => jest.useRealTimers()); // EDIT 2: undo the reconnection test's fake timers",
    "    jest.useFakeTimers(); // EDIT 2: the reconnection waits a jittered backoff (a timer)",
    "    jest.runOnlyPendingTimers(); // EDIT 2: the backoff's timer fires now",
]


def seed_block(markdown: str) -> str:
    """The TypeScript block under "Unit Testing Collaboration Features"."""
    section = markdown.index("### Unit Testing Collaboration Features")
    start = markdown.index("```typescript\n", section) + len("```typescript\n")
    return markdown[start : markdown.index("```\n", start)]


def split_copy(text: str) -> tuple[str, list[str]]:
    """(the copy without its header comment and its EDIT lines, the EDIT lines)."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("//"):
        lines.pop(0)  # the header: what the file is and the list of edits
    edits = [line.rstrip("\n") for line in lines if EDIT.search(line)]
    body = [line for line in lines if not EDIT.search(line)]
    while body and not body[0].strip():
        body.pop(0)  # the blank line after the added imports
    return "".join(body), edits


def test_the_copy_is_the_seeds_block_but_for_its_marked_edits() -> None:
    body, edits = split_copy(COPY.read_text())
    assert edits == EDITS
    if SEED.exists():
        block = seed_block(SEED.read_text())
        assert hashlib.sha256(block.encode()).hexdigest() == SEED_BLOCK_SHA256
        assert body == block
    assert hashlib.sha256(body.encode()).hexdigest() == SEED_BLOCK_SHA256


def test_split_copy_catches_an_unmarked_change() -> None:
    # The check above fails for a change that is not marked as an edit, and for an extra edit.
    text = COPY.read_text()
    changed = text.replace("toHaveBeenCalledTimes(2)", "toHaveBeenCalledTimes(3)")
    body, _ = split_copy(changed)
    assert hashlib.sha256(body.encode()).hexdigest() != SEED_BLOCK_SHA256
    extra = text.replace(
        "    // Simulate unexpected close\n",
        "    // Simulate unexpected close\n    jest.advanceTimersByTime(1); // EDIT 2\n",
    )
    assert split_copy(extra)[1] != EDITS


def test_the_seeds_jest_tests_pass(dev_dependencies: Path, tmp_path: Path) -> None:
    report = tmp_path / "jest.json"
    result = subprocess.run(
        [
            "node",
            str(dev_dependencies / "jest" / "bin" / "jest.js"),
            "--config",
            "test/seed-jest/jest.config.cjs",
            "--ci",
            "--json",
            f"--outputFile={report}",
        ],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (suite,) = json.loads(report.read_text())["testResults"]
    outcomes = {
        (result["ancestorTitles"][0], result["title"]): result["status"]
        for result in suite["assertionResults"]
    }
    # Every `it` of the seed's block, under its `describe`, passed: none skipped, none missing.
    expected = {}
    describe = ""
    for kind, title in re.findall(r'^(describe|  it)\("([^"]+)"', COPY.read_text(), re.MULTILINE):
        if kind == "describe":
            describe = title
        else:
            expected[(describe, title)] = "passed"
    assert len(expected) == 6
    assert outcomes == expected
