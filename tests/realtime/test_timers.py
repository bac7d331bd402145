"""The process's ticker (realtime.timers): members ticked when due, and only then, on a clock the
tests move. The sockets' own timers over the network: tests/realtime/test_base_consumer.py
(heartbeat, silence) and tests/realtime/test_auth.py (token expiry)."""

from __future__ import annotations

from typing import Any

from realtime.timers import Ticker


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Member:
    """Due at `due`; each tick is recorded, and the next one is `every` seconds later."""

    tick_slot: list[Any] | None = None

    def __init__(self, due: float, every: float = 30.0) -> None:
        self.due = due
        self.every = every
        self.ticks: list[float] = []
        self.asked = 0

    async def tick(self, now: float, wall: float) -> None:
        self.ticks.append(now)
        self.due = now + self.every

    def next_tick(self, now: float, wall: float) -> float:
        self.asked += 1
        return self.due


def _ticker(clock: _Clock) -> Ticker:
    return Ticker(step=1.0, clock=clock, wall=clock)


async def test_a_member_is_ticked_when_due_and_not_before() -> None:
    clock = _Clock()
    ticker = _ticker(clock)
    member = _Member(due=1010.5)
    ticker.add(member)
    clock.now = 1010.9
    assert await ticker.run_due() == 0 and member.ticks == []
    clock.now = 1011.0
    assert await ticker.run_due() == 1 and member.ticks == [1011.0]
    clock.now = 1040.0  # next due at 1041.0
    assert await ticker.run_due() == 0
    clock.now = 1041.2
    assert await ticker.run_due() == 1 and member.ticks == [1011.0, 1041.2]
    ticker.task.cancel()


async def test_idle_members_are_not_visited_between_their_ticks() -> None:
    """The old ticker called every member every second: 30 idle seconds of 1,000 sockets were
    30,000 calls. Now nobody is asked anything until someone is due."""
    clock = _Clock()
    ticker = _ticker(clock)
    members = [_Member(due=1030.0) for _ in range(1000)]
    for member in members:
        ticker.add(member)
    for second in range(1, 30):
        clock.now = 1000.0 + second
        assert await ticker.run_due() == 0
    assert sum(m.asked for m in members) == 1000  # once each, when added
    clock.now = 1030.0
    assert await ticker.run_due() == 1000
    ticker.task.cancel()


async def test_a_discarded_member_is_never_ticked_and_not_held() -> None:
    clock = _Clock()
    ticker = _ticker(clock)
    gone, kept = _Member(due=1005.0), _Member(due=1005.0)
    ticker.add(gone)
    ticker.add(kept)
    ticker.discard(gone)
    assert all(gone not in slot for slot in ticker.wheel.values())
    clock.now = 1006.0
    assert await ticker.run_due() == 1
    assert gone.ticks == [] and kept.ticks == [1006.0]
    ticker.task.cancel()


async def test_rescheduling_brings_a_tick_earlier_and_drops_the_later_one() -> None:
    """A refreshed token may expire sooner than the one before it."""
    clock = _Clock()
    ticker = _ticker(clock)
    member = _Member(due=1030.0, every=100.0)
    ticker.add(member)
    member.due = 1003.0
    ticker.reschedule(member)
    clock.now = 1003.0
    assert await ticker.run_due() == 1
    clock.now = 1031.0  # the old slot holds it no more
    assert await ticker.run_due() == 0 and member.ticks == [1003.0]
    ticker.task.cancel()


async def test_a_member_due_already_is_ticked_at_the_next_step() -> None:
    clock = _Clock()
    ticker = _ticker(clock)
    member = _Member(due=900.0, every=0.0)  # overdue, and due again at once after each tick
    ticker.add(member)
    clock.now = 1001.0
    assert await ticker.run_due() == 1  # not in a loop: again only at the next step
    clock.now = 1002.0
    assert await ticker.run_due() == 1
    ticker.task.cancel()


async def test_a_tick_that_fails_is_logged_and_the_member_stays_scheduled(caplog: Any) -> None:
    clock = _Clock()
    ticker = _ticker(clock)
    member = _Member(due=1001.0)

    async def broken(now: float, wall: float) -> None:
        raise RuntimeError("a bug of ours")

    member.tick = broken  # type: ignore[method-assign]
    ticker.add(member)
    clock.now = 1001.0
    assert await ticker.run_due() == 1
    assert "timer tick failed" in caplog.text
    clock.now = 1002.0  # still due (the failed tick moved nothing): ticked again
    assert await ticker.run_due() == 1
    ticker.task.cancel()
