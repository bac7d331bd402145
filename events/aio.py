"""Async plumbing every layer shares: database calls off the event loop, one object per loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def db(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`func` on a pool of threads, each with its own persistent connection.

    Channels' database_sync_to_async runs every call on one shared thread by default
    (thread_sensitive=True), which serializes a whole process's database work: a connect storm
    was capped at about 120 connects/s by that one thread (docs/performance.md). Our calls are
    self-contained service and selector functions, so they may run side by side; stale
    connections are closed before and after each call as Channels does."""
    return database_sync_to_async(func, thread_sensitive=False)


def per_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter returning the running loop's instance, made on first use; instances of closed
    loops are forgotten. Process-wide helpers (timers, registries) hold loop-bound tasks, and
    tests run several loops in one process."""
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
