"""One object per event loop: process-wide helpers (timers, revocation) hold loop-bound tasks,
and tests run several loops in one process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def per_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter returning the running loop's instance, made on first use; instances of closed
    loops are forgotten."""
    instances: dict[asyncio.AbstractEventLoop, T] = {}

    def get() -> T:
        loop = asyncio.get_running_loop()
        found = instances.get(loop)
        if found is None:
            for old in [other for other in instances if other.is_closed()]:
                del instances[old]
            found = instances[loop] = factory()
        return found

    return get
