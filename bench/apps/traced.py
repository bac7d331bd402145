"""TripSage's ASGI app with tracemalloc: SIGUSR1 writes the top retained allocations to
$TRACE_OUT (for finding what an idle connection costs; bench only)."""

import os
import signal
import tracemalloc

tracemalloc.start(1)

from tripsage.asgi import application  # noqa: E402,F401

_baseline = None


def _dump(signum, frame):
    global _baseline
    snapshot = tracemalloc.take_snapshot()
    if _baseline is None:
        _baseline = snapshot
        return
    with open(os.environ.get("TRACE_OUT", "/tmp/trace.txt"), "w") as out:
        for stat in snapshot.compare_to(_baseline, "lineno")[:40]:
            out.write(f"{stat}\n")


signal.signal(signal.SIGUSR1, _dump)
