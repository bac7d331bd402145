"""The table of docs/reliability.md from what `make chaos` recorded (tests/chaos, CHAOS_REPORT):
per fault, how long until everything converged, against the bound the timers promise."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def table(path: Path) -> str:
    runs: dict[tuple[str, str, str, float], list[float]] = defaultdict(list)
    for line in path.read_text().splitlines():
        row = json.loads(line)
        runs[(row["profile"], row["fault"], row["what"], row["bound"])].append(row["seconds"])
    lines = [
        "| timers | fault | converged when | runs | median | worst | bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for (profile, fault, what, bound), seconds in sorted(runs.items()):
        lines.append(
            f"| {profile} | {fault} | {what} | {len(seconds)} | "
            f"{statistics.median(seconds):.1f} s | {max(seconds):.1f} s | {bound:g} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/chaos.jsonl")))
