"""Database calls from async code: on a pool of threads, each with its own connection.

Channels' database_sync_to_async runs every call on one shared thread by default
(thread_sensitive=True), which serializes a whole process's database work: a connect storm was
capped at about 120 connects/s by that one thread (docs/performance.md). Our calls are
self-contained service and selector functions, so they may run side by side; each pool thread
keeps its own persistent connection (DATABASE_CONN_MAX_AGE), and stale ones are closed before
and after each call as Channels does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def db(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    return database_sync_to_async(func, thread_sensitive=False)
