"""events.aio's database threads: live calls before catch-up calls, catch-up calls capped."""

from __future__ import annotations

import threading
import time

import pytest

from events.aio import CATCH_UP, LIVE, LanePool


def test_a_live_call_runs_before_catch_up_calls_that_came_first():
    pool = LanePool(1)
    order: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5)

    pool.submit_in(CATCH_UP, hold)
    assert started.wait(5)  # the one thread is busy: what follows waits
    futures = [pool.submit_in(CATCH_UP, order.append, f"catch-up {i}") for i in range(3)]
    futures.append(pool.submit_in(LIVE, order.append, "live"))
    release.set()
    for future in futures:
        future.result(5)
    assert order == ["live", "catch-up 0", "catch-up 1", "catch-up 2"]
    pool.shutdown()


def test_catch_up_calls_never_take_more_than_their_threads():
    """Four threads, at most one on catch-up: ten slow catch-up calls run one at a time, and a
    live call is served meanwhile by a free thread."""
    pool = LanePool(4, max_catch_up=1)
    lock = threading.Lock()
    running, most = [0], [0]

    def catch_up() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    futures = [pool.submit_in(CATCH_UP, catch_up) for _ in range(10)]
    assert pool.submit(lambda: "live").result(5) == "live"
    assert not all(f.done() for f in futures)  # the live call did not wait for them
    for future in futures:
        future.result(5)
    assert most[0] == 1
    pool.shutdown()


def test_errors_reach_the_caller_and_shutdown_runs_what_was_waiting():
    pool = LanePool(2, max_catch_up=1)

    def fail() -> None:
        raise ValueError("boom")

    failing = pool.submit_in(CATCH_UP, fail)
    with pytest.raises(ValueError, match="boom"):
        failing.result(5)
    done = [pool.submit_in(CATCH_UP, time.sleep, 0.01) for _ in range(5)]
    pool.shutdown(wait=True)
    assert all(f.done() and f.exception() is None for f in done)
    with pytest.raises(RuntimeError):
        pool.submit(print)


def test_the_database_threads_follow_the_settings(settings):
    from events.aio import DatabasePool

    settings.DATABASE_THREADS = 3
    settings.DATABASE_CATCH_UP_THREADS = 1
    pool = DatabasePool()
    name = pool.lanes[CATCH_UP].submit(lambda: threading.current_thread().name).result(5)
    assert name.startswith("database")
    current = pool.replace(None)
    assert isinstance(current, LanePool)
    assert (current._max_workers, current._max_catch_up) == (3, 1)
    current.shutdown()


def test_threads_are_made_only_when_none_is_idle():
    """Each thread holds a database connection: calls one after another keep to one thread, as
    with a ThreadPoolExecutor; calls at once get more, up to max_workers."""
    pool = LanePool(8)
    names = {pool.submit(lambda: threading.current_thread().name).result(5) for _ in range(20)}
    assert len(names) == 1
    barrier = threading.Barrier(3)
    together = [pool.submit(barrier.wait, 5) for _ in range(3)]
    for future in together:
        future.result(5)
    assert 3 <= len(pool._threads) <= 8
    pool.shutdown()
