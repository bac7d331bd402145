"""events.batch: lookups asked for at the same time served by one call."""

from __future__ import annotations

import asyncio

import pytest

from events.batch import Batcher


class Store:
    """fetch_many over a dict, recording each batch; `gate` holds a batch in flight."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.fail_next: Exception | None = None

    async def fetch_many(self, keys: list[int]) -> dict[int, str]:
        self.batches.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return {key: f"value-{key}" for key in keys if key >= 0}


async def test_a_lone_key_is_fetched_alone_and_at_once():
    store = Store()
    batcher = Batcher(store.fetch_many)
    assert await batcher(1) == "value-1"
    assert store.batches == [[1]]


async def test_keys_asked_for_together_share_one_call():
    store = Store()
    batcher = Batcher(store.fetch_many)
    values = await asyncio.gather(*(batcher(k) for k in range(10)))
    assert values == [f"value-{k}" for k in range(10)]
    assert store.batches == [list(range(10))]


async def test_keys_arriving_while_a_batch_is_in_flight_go_together_in_the_next():
    store = Store()
    store.gate = asyncio.Event()
    batcher = Batcher(store.fetch_many)
    first = asyncio.ensure_future(batcher(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(batcher(k)) for k in (2, 3, 4)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await first == "value-1"
    assert await asyncio.gather(*later) == ["value-2", "value-3", "value-4"]
    assert store.batches == [[1], [2, 3, 4]]


async def test_the_same_key_asked_twice_at_once_is_fetched_once():
    store = Store()
    batcher = Batcher(store.fetch_many)
    assert await asyncio.gather(batcher(5), batcher(5)) == ["value-5", "value-5"]
    assert store.batches == [[5]]


async def test_batches_are_capped():
    store = Store()
    batcher = Batcher(store.fetch_many, max_batch=4)
    await asyncio.gather(*(batcher(k) for k in range(10)))
    assert store.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_a_failed_batch_fails_its_waiters_only_and_the_next_batch_runs():
    store = Store()
    store.gate = asyncio.Event()
    store.fail_next = ConnectionError("database away")
    batcher = Batcher(store.fetch_many)
    failing = [asyncio.ensure_future(batcher(k)) for k in (1, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    after = asyncio.ensure_future(batcher(3))
    store.gate.set()
    for future in failing:
        with pytest.raises(ConnectionError):
            await future
    assert await after == "value-3"


async def test_a_key_the_fetch_leaves_out_is_a_key_error_for_its_waiter_alone():
    store = Store()
    batcher = Batcher(store.fetch_many)
    results = await asyncio.gather(batcher(-1), batcher(1), return_exceptions=True)
    assert isinstance(results[0], KeyError)
    assert results[1] == "value-1"


async def test_a_cancelled_waiter_does_not_cancel_the_others_of_its_batch():
    store = Store()
    store.gate = asyncio.Event()
    batcher = Batcher(store.fetch_many)
    impatient = asyncio.ensure_future(batcher(1))
    patient = asyncio.ensure_future(batcher(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    impatient.cancel()
    store.gate.set()
    assert await patient == "value-1"
    assert impatient.cancelled()
