"""Where a py-spy raw profile's samples went (bench/step.py --spy): the top functions by own
samples, and the samples by part of the server (daphne's send path, Twisted's writes, the
fan-out loop, the database threads, ...).

    .venv/bin/python bench/spy_summary.py out.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

PARTS = (  # first match wins, tested against the whole stack
    ("daphne send (ASGI websocket.send)", "Server.handle_reply"),
    ("Twisted buffered write", "doWrite"),
    ("database threads", "thread_handler"),
    ("thread pool (idle or other)", "_worker"),
    ("fan-out loop (layer, direct writes)", "LoopState._"),
    ("consumers (client messages)", "websocket_receive"),
    ("event loop select", "EpollSelector.select"),
)


def _name(frame: str) -> str:
    match = re.match(r"(.*) \((.*?):\d+\)", frame)
    if not match:
        return frame
    return f"{match.group(1)} ({match.group(2).split('site-packages/')[-1]})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in open(args.profile):
        stack, _, count = line.rstrip().rpartition(" ")
        n = int(count)
        total += n
        own[_name(stack.split(";")[-1])] += n
        parts[next((label for label, key in PARTS if key in stack), "other")] += n
    print(f"{total} samples\n-- by part")
    for label, n in parts.most_common():
        print(f"{n * 100 / total:5.1f}%  {label}")
    print("-- by function (own samples)")
    for name, n in own.most_common(args.top):
        print(f"{n * 100 / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
