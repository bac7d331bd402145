"""The presence keeper against a real Redis: it renews and rebuilds every trip of its process,
whatever happens to one of them meanwhile."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from realtime.presence import PresenceTracker
from realtime.presence_store import PRESENCE, RedisBackend
from tests.conftest import require_redis_url


def user(pk: int) -> SimpleNamespace:
    return SimpleNamespace(pk=pk, get_username=lambda: f"u{pk}")


@pytest.fixture
def tracker(settings) -> PresenceTracker:
    settings.PRESENCE_COALESCE_SECONDS = 60  # no publishing in these tests
    return PresenceTracker(
        RedisBackend({"address": require_redis_url()}, f"keeper-{uuid.uuid4().hex[:8]}")
    )


async def test_a_trip_emptied_while_the_keeper_renews_costs_the_other_trips_nothing(tracker):
    """The keeper waits on Redis trip by trip; the last socket of trip 1 leaves meanwhile. Redis
    lost trip 2's entries: the keeper still puts them back."""
    await tracker.join(1, "c1", user(1))
    await tracker.join(2, "c2", user(2))
    backend = tracker.backend
    await backend._client().delete(backend._key(2, PRESENCE))  # Redis lost them
    touch = backend.touch

    async def leave_first(trip_id, kind, members):
        if trip_id == 1 and kind == PRESENCE and "c1" in tracker.local.get(1, {}):
            await tracker.leave(1, "c1", user(1))  # while this tick is on its way
        return await touch(trip_id, kind, members)

    backend.touch = leave_first
    await tracker.tick()
    assert await backend.members(2, PRESENCE) != []  # rebuilt
    assert await backend.members(1, PRESENCE) == []  # left, and not put back


async def test_touching_no_entries_is_no_error(tracker):
    assert await tracker.backend.touch(3, PRESENCE, {}) == 0
