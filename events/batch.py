"""Many concurrent lookups served by one: what a connect storm asks of the database.

Each socket that opens reads its user and its trip snapshot. One by one, a storm of N sockets costs
N thread hops and N compiled queries per read (docs/performance.md, S4). A `Batcher` serves a key
at once when nothing is in flight; keys asked for while a batch is on its way go together in the
next one. So a lone connect waits for nothing, and under a storm the cost per socket falls with
the batch size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from events.aio import per_loop

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batcher(Generic[K, V]):
    """`await batcher(key)`: the value `fetch_many` gives for `key` in a batch of keys.

    `fetch_many(keys)` answers a dict with an entry for every key it was given (a missing entry
    is a fault of `fetch_many`: its waiters get a KeyError). If it raises, every waiter of that
    batch gets the exception; the next batch is tried afresh. One queue per event loop."""

    def __init__(
        self, fetch_many: Callable[[list[K]], Awaitable[dict[K, V]]], max_batch: int = 100
    ) -> None:
        self.fetch_many = fetch_many
        self.max_batch = max_batch
        self._state = per_loop(_Queue[K, V])

    async def __call__(self, key: K) -> V:
        queue = self._state()
        loop = asyncio.get_running_loop()
        # A future per caller, not one per key behind asyncio.shield: one waiter's cancellation
        # touches no other, and the value reaches each caller one turn of the loop sooner
        # (a turn is long in a storm: bench S7).
        future: asyncio.Future[V] = loop.create_future()
        waiting = queue.waiters.get(key)
        if waiting is None:
            queue.waiters[key] = [future]
        else:
            waiting.append(future)
        if queue.runner is None:
            queue.runner = loop.create_task(self._run(queue))
        return await future

    async def _run(self, queue: _Queue[K, V]) -> None:
        batch: dict[K, list[asyncio.Future[V]]] = {}
        try:
            while queue.waiters:
                batch = dict(list(queue.waiters.items())[: self.max_batch])
                for key in batch:
                    del queue.waiters[key]
                try:
                    values = await self.fetch_many(list(batch))
                except Exception as error:
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(error)
                    continue
                for key, futures in batch.items():
                    for future in futures:
                        if future.done():
                            continue
                        if key in values:
                            future.set_result(values[key])
                        else:
                            future.set_exception(KeyError(key))
        finally:
            queue.runner = None
            # Cancelled (the loop closing) with keys still waiting: they must not hang.
            for futures in [*batch.values(), *queue.waiters.values()]:
                for future in futures:
                    if not future.done():
                        future.cancel()
            queue.waiters.clear()


class _Queue(Generic[K, V]):
    def __init__(self) -> None:
        self.waiters: dict[K, list[asyncio.Future[V]]] = {}
        self.runner: asyncio.Task[None] | None = None
