"""One ticking task per process drives every socket's timers (heartbeat, silence, token expiry),
instead of one sleeping task per socket: idle sockets cost no task and no wake-ups of their own.

The task wakes every `step` seconds and ticks only the members that are due: each member says
when it next needs a tick (`next_tick`), and waits in that slot of a timer wheel until then. A
socket idle between two heartbeats is not visited at all (10,000 idle sockets cost the process
one visit per socket per heartbeat interval, not one per second: docs/performance.md, S3).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings

from events.aio import per_loop

logger = logging.getLogger(__name__)


class Ticking(Protocol):
    # The wheel's slot (a list) the member waits in; the ticker's bookkeeping, None when none.
    tick_slot: list[Any] | None

    async def tick(self, now: float, wall: float) -> None: ...

    def next_tick(self, now: float, wall: float) -> float:
        """When to be ticked next (a `clock` time)."""
        ...


class Ticker:
    def __init__(
        self,
        *,
        step: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.step = step if step is not None else self.interval()
        self.clock = clock
        self.wall = wall
        self.members: set[Any] = set()
        self.wheel: dict[int, list[Any]] = {}  # slot number -> its members
        self.slot = math.floor(clock() / self.step)  # the last slot ticked
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def interval() -> float:
        # Fine enough for the shortest timer we run, coarse enough to cost nothing.
        return max(0.05, min(1.0, settings.REALTIME_HEARTBEAT_SECONDS / 4))

    def add(self, member: Ticking) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.slot = math.floor(self.clock() / self.step)
            self.task = loop.create_task(self._run())
        self.members.add(member)
        self._schedule(member)

    def discard(self, member: Ticking) -> None:
        self.members.discard(member)
        self._unschedule(member)

    def reschedule(self, member: Any) -> None:
        """Ask `member` again when it is due: after a change that may bring its tick earlier."""
        if member in self.members:
            self._unschedule(member)
            self._schedule(member)

    def _schedule(self, member: Ticking) -> None:
        at = member.next_tick(self.clock(), self.wall())
        # Never before it is due (ceil), never in the slot being ticked (after self.slot).
        number = max(math.ceil(at / self.step), self.slot + 1)
        slot = self.wheel.get(number)
        if slot is None:
            slot = self.wheel[number] = []
        slot.append(member)
        member.tick_slot = slot

    def _unschedule(self, member: Ticking) -> None:
        slot = getattr(member, "tick_slot", None)
        if slot is not None:
            member.tick_slot = None
            slot.remove(member)

    async def run_due(self) -> int:
        """Tick every member whose slot has come, and schedule it again. Returns how many."""
        now, wall = self.clock(), self.wall()
        ticked = 0
        while self.slot < math.floor(now / self.step):
            self.slot += 1
            slot = self.wheel.pop(self.slot, None)
            for member in list(slot or ()):
                if member.tick_slot is not slot:
                    continue  # discarded or rescheduled by a tick before its own
                member.tick_slot = None
                ticked += 1
                try:
                    await member.tick(now, wall)
                except Exception:
                    logger.exception("timer tick failed for %r", member)
                if member in self.members and member.tick_slot is None:
                    self._schedule(member)
        return ticked

    async def _run(self) -> None:
        while self.members:
            await asyncio.sleep(self.step)
            await self.run_due()
        self.wheel.clear()


ticker = per_loop(Ticker)
