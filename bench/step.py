"""One fan-out step, for profiling: one app, one trip of N members, one edit rate.

    .venv/bin/python bench/step.py tripsage 80                 # p99, CPU per delivery, threads
    .venv/bin/python bench/step.py tripsage 80 --spy out.txt   # and a py-spy profile (raw format)
    .venv/bin/python bench/spy_summary.py out.txt              # where the samples went

A 3 s warm-up step runs first; the measured step sends for `--seconds`. py-spy records the server
process only while the edits are sent. CPU is read from /proc per thread: the event loop's thread
(`main`) and the database threads. Uses the harness's fixture and load generators
(bench/infra.py); nothing is written to docs/.
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import infra as harness  # noqa: E402


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) per thread of `pid`."""
    out = {}
    for path in glob.glob(f"/proc/{pid}/task/*/stat"):
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        out[path.split("/")[4]] = (int(fields[11]) + int(fields[12])) / 100
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("app", choices=sorted(harness.APPS))
    parser.add_argument("rate", type=float, help="edits per second")
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--spy", help="write a py-spy raw profile of the server here")
    parser.add_argument("--gil", action="store_true", help="py-spy: only samples holding the GIL")
    args = parser.parse_args()

    fx = harness.build_fixture(max(1000, args.members), editors=8)
    servers = harness.start_servers(args.app, fx.env)
    try:
        harness.fanout_run(servers, fx, args.members, args.rate, 3)  # warm-up
        pid = servers.processes[0].pid
        box: dict[str, Any] = {}
        send = harness.Worker.send

        def hooked(self: harness.Worker, *command: Any) -> None:
            if command[0] == "send" and "before" not in box:
                box["before"] = _threads(pid)
                if args.spy:
                    spy = [sys.executable.replace("python", "py-spy"), "record", "-p", str(pid)]
                    spy += ["-o", args.spy, "-f", "raw", "-r", "250", "--nonblocking"]
                    spy += ["-d", str(int(args.seconds) - 1)] + (["--gil"] if args.gil else [])
                    box["spy"] = subprocess.Popen(spy)
            send(self, *command)

        harness.Worker.send = hooked  # type: ignore[method-assign]
        row = harness.fanout_run(servers, fx, args.members, args.rate, args.seconds)
        after = _threads(pid)
        if "spy" in box:
            box["spy"].wait()
    finally:
        servers.stop()
    used = sorted(((after[t] - box["before"].get(t, 0.0), t) for t in after), reverse=True)
    threads = ", ".join(
        f"{'main' if t == str(pid) else 'thread'} {cpu:.2f}" for cpu, t in used if cpu >= 0.05
    )
    print(
        f"{args.app} {args.members} members, {args.rate:g} edits/s: p99 {row['p99']:.0f} ms, "
        f"delivered {row['delivered']:.2%}, {row['cpu_us_per_delivery']:.1f} us of server CPU "
        f"per delivery, server {row['server_cpu_share']:.2f} of a core; CPU s by thread: {threads}"
    )


if __name__ == "__main__":
    main()
