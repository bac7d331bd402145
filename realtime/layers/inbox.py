"""A local channel's inbox in the fan-out layer: messages queued for one consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Inbox:
    """A bounded FIFO with one waiting receiver, lighter than asyncio.Queue: an idle socket's
    inbox holds no list at all (a deque allocates a 64-slot block up front), only while
    messages wait. The layer bounds it (`capacity`) before `put`. Instead of a receiver waiting
    in `get`, its owner may have `notify` called on each `put` (FanoutChannelLayer.on_message:
    no task waits on an idle socket's inbox). It also holds the owner's direct handlers
    (FanoutChannelLayer.attach), which the listener looks up with the inbox: the methods of
    `owner`, as its class's functions (one table per class, not one dict per socket), or else
    plain handlers and no owner."""

    __slots__ = ("direct", "items", "notify", "owner", "touched", "waiter")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] | None = None  # while messages wait
        self.waiter: asyncio.Future[None] | None = None
        self.notify: Callable[[], None] | None = None
        self.direct: dict[str, Any] | None = None  # kind -> handler, or owner's function
        self.owner: Any = None
        self.touched = time.monotonic()

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else 0

    def put(self, message: dict[str, Any]) -> None:
        if self.items is None:
            self.items = [message]
        else:
            self.items.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if self.notify is not None:
            self.notify()

    def take(self) -> dict[str, Any] | None:
        """The oldest message, or None."""
        items = self.items
        if not items:
            return None
        self.touched = time.monotonic()
        message = items.pop(0)  # inboxes stay short: the fast path bypasses them
        if not items:
            self.items = None
        return message

    async def get(self) -> dict[str, Any]:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        message = self.take()
        assert message is not None
        return message
