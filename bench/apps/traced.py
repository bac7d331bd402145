"""TripSage's ASGI app (or, with TRACE_APP=channels, the plain Channels reference) under
tracemalloc: the first SIGUSR1 takes a baseline, the next writes the top retained allocations
since then to $TRACE_OUT (what an idle connection costs; bench only)."""

import os
import signal
import tracemalloc

tracemalloc.start(1)

if os.environ.get("TRACE_APP") == "channels":
    from bench.apps.plain_channels import application
else:
    from tripsage.asgi import application  # noqa: F401

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
