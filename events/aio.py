"""Async plumbing every layer shares: database calls off the event loop, one object per loop."""

from __future__ import annotations

import asyncio
import collections
import functools
import select
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


# The lanes of the database threads (`db(..., lane=...)`): a waiting call of a lower lane runs
# first. LIVE is what a connected client is waiting on now (edits, chat posts, reads a request
# asked for); CATCH_UP is what a socket needs to open or to come back (its user, its snapshot,
# the events it missed). In a reconnect storm hundreds of catch-up calls wait at once, and a live
# edit queued behind them delayed every member's event by as long (bench S7).
LIVE = 0
CATCH_UP = 1


class _Call:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as error:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


class LanePool(Executor):
    """`max_workers` threads that take a waiting LIVE call before any CATCH_UP call, each lane in
    the order its calls came, with at most `max_catch_up` threads on CATCH_UP calls at once (a
    ThreadPoolExecutor takes every call in arrival order).

    The cap keeps threads free for live calls in a storm, and keeps the storm's reads from
    crowding the live ones out of the GIL: eight threads busy with snapshots and replays made a
    live edit's few milliseconds of ORM work take ten times as long (bench S7)."""

    def __init__(
        self, max_workers: int, max_catch_up: int | None = None, thread_name_prefix: str = "lanes"
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers  # the name ThreadPoolExecutor uses (close_connections)
        self._max_catch_up = max(1, min(max_catch_up or max_workers, max_workers))
        self._prefix = thread_name_prefix
        self._waiting: dict[int, collections.deque[_Call]] = {
            LIVE: collections.deque(),
            CATCH_UP: collections.deque(),
        }
        self._catching_up = 0
        self._idle = threading.Semaphore(0)  # released by each call done: a thread free again
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.submit_in(LIVE, fn, *args, **kwargs)

    def submit_in(self, lane: int, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._waiting[lane].append(_Call(future, fn, args, kwargs))
            # A thread (and so a database connection) only when none is idle, as a
            # ThreadPoolExecutor does (and as approximately): a quiet process holds one or
            # two, not max_workers.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            self._cond.notify()
        return future

    def _next(self) -> tuple[int, _Call] | None:
        """The call to run next, waiting for one; None once shut down with nothing left."""
        live, catch_up = self._waiting[LIVE], self._waiting[CATCH_UP]
        with self._cond:
            while True:
                if live:
                    return LIVE, live.popleft()
                if catch_up and self._catching_up < self._max_catch_up:
                    self._catching_up += 1
                    return CATCH_UP, catch_up.popleft()
                if self._shutdown and not catch_up:
                    return None
                self._cond.wait()

    def _work(self) -> None:
        while (taken := self._next()) is not None:
            lane, call = taken
            call.run()
            del call, taken
            self._idle.release()
            if lane == CATCH_UP:
                with self._cond:
                    self._catching_up -= 1
                    if self._shutdown:
                        self._cond.notify_all()  # the waiting may have nothing left to wait for
                    else:
                        self._cond.notify()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                for lane in self._waiting.values():
                    for call in lane:
                        call.future.cancel()
            self._cond.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


class DatabasePool(Executor):
    """The process's database threads: settings.DATABASE_THREADS of them, made on first use,
    taking LIVE calls before CATCH_UP ones (`LanePool`).

    Each thread holds at most one persistent connection, so this bounds the connections a
    process's socket work can hold (docs/deployment.md). An Executor that hands on to
    the current pool, so a test can put a pool of its own in place (`replace`; a plain
    ThreadPoolExecutor then runs every lane in arrival order)."""

    def __init__(self) -> None:
        self._pool: Executor | None = None
        self._lock = threading.Lock()
        self.lanes = {LIVE: _Lane(self, LIVE), CATCH_UP: _Lane(self, CATCH_UP)}

    def _current(self) -> Executor:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = LanePool(
                        settings.DATABASE_THREADS,
                        settings.DATABASE_CATCH_UP_THREADS,
                        thread_name_prefix="database",
                    )
                pool = self._pool
        return pool

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.submit_in(LIVE, fn, *args, **kwargs)

    def submit_in(self, lane: int, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        pool = self._current()
        if isinstance(pool, LanePool):
            return pool.submit_in(lane, fn, *args, **kwargs)
        return pool.submit(fn, *args, **kwargs)

    def replace(self, pool: Executor | None) -> Executor | None:
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
        workers: int = pool._max_workers  # type: ignore[attr-defined]
        barrier = threading.Barrier(workers)

        def close() -> None:
            barrier.wait(timeout)
            connections.close_all()

        for future in [pool.submit(close) for _ in range(workers)]:
            future.result(timeout)


class _Lane(Executor):
    """The database pool seen as an Executor whose calls all go to one lane (what asgiref's
    run_in_executor takes)."""

    def __init__(self, pool: DatabasePool, lane: int) -> None:
        self._pool = pool
        self._lane = lane

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._pool.submit_in(self._lane, fn, *args, **kwargs)


database_pool = DatabasePool()


def db(func: Callable[P, R], *, lane: int = LIVE) -> Callable[P, Awaitable[R]]:
    """`func` on the process's pool of database threads, each with its own persistent
    connection (`database_pool`, settings.DATABASE_THREADS threads), in `lane`: LIVE for what
    a connected client waits on, CATCH_UP for the reads that open a socket or bring it back
    (they wait while LIVE calls do).

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
        executor=database_pool.lanes[lane],  # type: ignore[arg-type]
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
