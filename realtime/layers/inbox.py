"""A local channel's inbox in the fan-out layer: messages queued for one consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Inbox:
    """A bounded FIFO with one waiting receiver, lighter than asyncio.Queue: an idle socket's
    inbox is a small list (a deque allocates a 64-slot block up front). The layer bounds it
    (`capacity`) before `put`. Instead of a receiver waiting in `get`, its owner may have
    `notify` called on each `put` (FanoutChannelLayer.on_message: no task waits on an idle
    socket's inbox)."""

    __slots__ = ("items", "notify", "touched", "waiter")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.notify: Callable[[], None] | None = None
        self.touched = time.monotonic()

    def put(self, message: dict[str, Any]) -> None:
        self.items.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if self.notify is not None:
            self.notify()

    async def get(self) -> dict[str, Any]:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        self.touched = time.monotonic()
        return self.items.pop(0)  # inboxes stay short: the fast path bypasses them
