"""Async plumbing every layer shares: database calls off the event loop, one object per loop."""

from __future__ import annotations

import asyncio
import functools
import select
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class DatabasePool(Executor):
    """The process's database threads: settings.DATABASE_THREADS of them, made on first use.

    Each thread holds at most one persistent connection, so this bounds the connections a
    process's socket work can hold (docs/deployment.md). An Executor that hands on to
    the current pool, so a test can put a pool of its own in place (`replace`)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _current(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=settings.DATABASE_THREADS, thread_name_prefix="database"
                    )
                pool = self._pool
        return pool

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._current().submit(fn, *args, **kwargs)

    def replace(self, pool: ThreadPoolExecutor | None) -> ThreadPoolExecutor | None:
        """Put `pool` in place (None: a new one on next use); returns the one it replaced."""
        with self._lock:
            old, self._pool = self._pool, pool
        return old

    def close_connections(self, timeout: float = 30) -> None:
        """Close the connection of every thread of the current pool (the test database must
        lose them before it is dropped): one call per thread, held at a barrier until every
        thread has one."""
        pool = self._pool
        if pool is None:
            return
        barrier = threading.Barrier(pool._max_workers)

        def close() -> None:
            barrier.wait(timeout)
            connections.close_all()

        for future in [pool.submit(close) for _ in range(pool._max_workers)]:
            future.result(timeout)


database_pool = DatabasePool()


def db(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`func` on the process's pool of database threads, each with its own persistent
    connection (`database_pool`, settings.DATABASE_THREADS threads).

    Channels' database_sync_to_async runs every call on one shared thread by default
    (thread_sensitive=True), which serializes a whole process's database work: a connect storm
    was capped at about 120 connects/s by that one thread (docs/performance.md). Our calls are
    self-contained service and selector functions, so they may run side by side; stale
    connections are closed before and after each call as Channels does, and a connection the
    server has ended meanwhile (a restart, pg_terminate_backend, an idle timeout) is discarded
    before the call uses it (`discard_ended_connections`)."""

    @functools.wraps(func)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        discard_ended_connections()
        return func(*args, **kwargs)

    # Any Executor does (run_in_executor takes one); asgiref's hint names ThreadPoolExecutor.
    return database_sync_to_async(
        checked,
        thread_sensitive=False,
        executor=database_pool,  # type: ignore[arg-type]
    )


def discard_ended_connections() -> None:
    """Close this thread's persistent connections that the server has ended, so that the next
    query opens a new one instead of failing on the dead one.

    A server never writes to an idle connection except to end it (the FATAL message of a
    terminated backend, then end of file), so a readable socket, seen with one poll and no
    round trip, is a connection to check with Django's `is_usable` (a SELECT 1; rare messages
    such as a reported parameter change pass it). This replaces Django's health check, which
    costs that SELECT 1 before the first query of every call: `health_check_done` tells Django
    the connection has been checked."""
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None or conn.in_atomic_block:
            continue
        try:
            fd = raw.fileno()
        except AttributeError:
            continue  # no socket to look at (SQLite): Django's own checks apply
        except Exception:
            fd = -1  # the driver knows the connection is broken
        if fd < 0 or (_readable(fd) and not conn.is_usable()):
            conn.close()
        conn.health_check_done = True  # type: ignore[attr-defined]  # Django 4.1+, not in the stubs


def _readable(fd: int) -> bool:
    poller = select.poll()  # not select.select: a busy process's descriptors pass 1024
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


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
