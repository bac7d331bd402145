"""One ticking task per process drives every socket's timers (heartbeat, silence, token expiry),
instead of one sleeping task per socket: idle sockets cost no task and no wake-ups of their own."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from django.conf import settings

from events.aio import per_loop

logger = logging.getLogger(__name__)


class Ticking(Protocol):
    async def tick(self, now: float, wall: float) -> None: ...


class Ticker:
    def __init__(self) -> None:
        self.members: set[Any] = set()
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def interval() -> float:
        # Fine enough for the shortest timer we run, coarse enough to cost nothing.
        return max(0.05, min(1.0, settings.REALTIME_HEARTBEAT_SECONDS / 4))

    def add(self, member: Ticking) -> None:
        self.members.add(member)
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run())

    def discard(self, member: Ticking) -> None:
        self.members.discard(member)

    async def _run(self) -> None:
        while self.members:
            await asyncio.sleep(self.interval())
            now, wall = time.monotonic(), time.time()
            for member in list(self.members):
                try:
                    await member.tick(now, wall)
                except Exception:
                    logger.exception("timer tick failed for %r", member)


ticker = per_loop(Ticker)
