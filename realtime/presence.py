"""Presence and editing indicators, right across server processes: the tracker consumers call.

Each socket's entry lives in the store (realtime.presence_store). One keeper task per process
renews its own sockets' entries and sweeps expired ones, so a process that dies drops out of
presence by itself within the TTL; disconnect handlers only make it faster. Changes are published
to the trip's sockets, coalesced per trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from django.conf import settings

import protocol
from events.broadcast import broadcast_now
from events.groups import trip_group
from realtime.presence_state import TripPresence
from realtime.presence_store import (
    EDITING,
    PRESENCE,
    MemoryBackend,
    RedisBackend,
    editing_member,
    presence_member,
)

logger = logging.getLogger(__name__)


class PresenceTracker:
    """This process's view: which local sockets are on which trip, and the keeper task."""

    def __init__(self, backend: MemoryBackend | RedisBackend) -> None:
        self.backend = backend
        self.local: dict[int, dict[str, Any]] = defaultdict(dict)  # trip -> connection -> user
        # (trip, connection) -> {field: expiry}: this process's editing indicators, which the
        # keeper puts back if Redis lost them.
        self.editing: dict[tuple[int, str], dict[str, float]] = defaultdict(dict)
        self._keeper: asyncio.Task[None] | None = None
        self._pending: dict[int, dict[str, bool]] = {}  # trip -> what changed since last publish
        # The last state read per trip with local sockets: a join answers from it (plus itself)
        # instead of reading every entry again, so a storm of N joins costs O(N), not O(N^2).
        self.states: dict[int, TripPresence] = {}

    # -- changes ------------------------------------------------------------------------------

    async def join(self, trip_id: int, connection_id: str, user: Any) -> TripPresence:
        self.local[trip_id][connection_id] = user
        self._ensure_keeper()
        expires = time.time() + entry_lifetime()
        await self.backend.add(trip_id, PRESENCE, presence_member(connection_id, user), expires)
        # The editing state goes out too: this process's cached state, which the new socket's
        # snapshot shows, may predate another process's indicator (or Redis losing it).
        self._publish(trip_id, presence=True, editing=True)
        cached = self.states.get(trip_id)
        if cached is None:
            cached = self.states[trip_id] = await self.current(trip_id)
            return cached
        return cached.with_connection(user)

    async def leave(self, trip_id: int, connection_id: str, user: Any) -> None:
        self.local[trip_id].pop(connection_id, None)
        if not self.local[trip_id]:
            del self.local[trip_id]
            self.states.pop(trip_id, None)
        fields = self.editing.pop((trip_id, connection_id), {})
        await self.backend.remove(trip_id, PRESENCE, [presence_member(connection_id, user)])
        if fields:
            await self.backend.remove(
                trip_id, EDITING, [editing_member(connection_id, user, f) for f in fields]
            )
        self._publish(trip_id, presence=True, editing=bool(fields))

    async def editing_start(self, trip_id: int, connection_id: str, user: Any, field: str) -> None:
        expires = time.time() + settings.EDITING_TTL_SECONDS
        self.editing[(trip_id, connection_id)][field] = expires
        await self.backend.touch(
            trip_id, EDITING, {editing_member(connection_id, user, field): expires}
        )
        self._publish(trip_id, presence=False, editing=True)

    async def editing_stop(self, trip_id: int, connection_id: str, user: Any, field: str) -> None:
        self.editing[(trip_id, connection_id)].pop(field, None)
        await self.backend.remove(trip_id, EDITING, [editing_member(connection_id, user, field)])
        self._publish(trip_id, presence=False, editing=True)

    async def current(self, trip_id: int) -> TripPresence:
        return await self.backend.state(trip_id, time.time(), bump=False)

    def _publish(self, trip_id: int, *, presence: bool, editing: bool) -> None:
        """Coalesce: changes within `coalesce_seconds` go out as one update per kind, so a
        connect storm into one trip costs a few broadcasts, not one per socket."""
        pending = self._pending.get(trip_id)
        if pending is not None:
            pending["presence"] |= presence
            pending["editing"] |= editing
            return
        self._pending[trip_id] = {"presence": presence, "editing": editing}
        loop = asyncio.get_running_loop()
        loop.call_later(
            self.coalesce_seconds(trip_id), lambda: loop.create_task(self._flush(trip_id))
        )

    def coalesce_seconds(self, trip_id: int) -> float:
        """PRESENCE_COALESCE_SECONDS, and that again per PRESENCE_COALESCE_SOCKETS sockets this
        process holds on the trip: an update costs a write per socket, so a storm into a
        10,000-member trip costs as much presence work per second as one into 1,000."""
        sockets = len(self.local.get(trip_id, ()))
        return settings.PRESENCE_COALESCE_SECONDS * max(
            1.0, sockets / settings.PRESENCE_COALESCE_SOCKETS
        )

    async def _flush(self, trip_id: int) -> None:
        changed = self._pending.pop(trip_id, None)
        if not changed:
            return
        try:
            state = await self.backend.state(trip_id, time.time(), bump=True)
            if trip_id in self.local:
                self.states[trip_id] = state
            group = trip_group(trip_id)
            for kind, wanted in changed.items():
                if not wanted:
                    continue
                message = (
                    state.presence_message() if kind == "presence" else state.editing_message()
                )
                await broadcast_now(
                    group,
                    {
                        "type": "trip.presence",
                        "kind": message["type"],
                        "version": state.version,
                        "digest": state.digest(message["type"]),
                        "text": protocol.encode(message),
                    },
                )
        except Exception:
            logger.exception("presence publish failed for trip %s", trip_id)

    # -- keeper -------------------------------------------------------------------------------

    def _ensure_keeper(self) -> None:
        loop = asyncio.get_running_loop()
        if self._keeper is None or self._keeper.done() or self._keeper.get_loop() is not loop:
            self._keeper = loop.create_task(self._keep())

    async def _keep(self) -> None:
        while self.local:
            await asyncio.sleep(settings.PRESENCE_REFRESH_SECONDS)
            try:
                await self.tick()
            except Exception:
                logger.exception("presence keeper tick failed; retrying next interval")

    async def tick(self) -> None:
        """Renew this process's entries, then sweep expired ones (any process's) on its trips.
        Entries Redis lost (a restart without persistence, FLUSHALL, a failover to a replica
        that lagged) are put back from this process's live sockets, and the trip's sockets are
        sent the rebuilt state: exact again within one interval."""
        now = time.time()
        for trip_id in list(self.local):
            try:
                await self._keep_trip(trip_id, now)
            except Exception:  # one trip's failure does not cost the others their renewal
                logger.exception("presence keeper failed for trip %s", trip_id)

    async def _keep_trip(self, trip_id: int, now: float) -> None:
        connections = dict(self.local.get(trip_id, {}))
        if not connections:
            return  # its last socket left meanwhile
        presence = {presence_member(conn, user): conn for conn, user in connections.items()}
        editing = {
            editing_member(conn, user, field): (conn, field, expires)
            for conn, user in connections.items()
            for field, expires in self.editing.get((trip_id, conn), {}).items()
            if expires > now
        }
        expiry = now + entry_lifetime()
        restored = await self.backend.touch(trip_id, PRESENCE, dict.fromkeys(presence, expiry))
        restored += await self.backend.touch(
            trip_id, EDITING, {member: expires for member, (_, _, expires) in editing.items()}
        )
        # A socket that left (or an indicator that stopped) while this was on its way may have
        # had its removal applied first, and been put back: remove it again.
        local = self.local.get(trip_id, {})
        await self.backend.remove(
            trip_id, PRESENCE, [member for member, conn in presence.items() if conn not in local]
        )
        await self.backend.remove(
            trip_id,
            EDITING,
            [
                member
                for member, (conn, field, _) in editing.items()
                if field not in self.editing.get((trip_id, conn), {})
            ],
        )
        if restored or await self.backend.sweep(trip_id, now):
            self._publish(trip_id, presence=True, editing=True)


def entry_lifetime() -> float:
    """How long a presence entry lives unless renewed: PRESENCE_TTL_SECONDS less one keeper
    interval, so that the entries of a dead process are swept (by a keeper that ticks every
    interval) within PRESENCE_TTL_SECONDS of its last renewal; at least two intervals, so that
    a live process's renewal always comes first."""
    refresh = settings.PRESENCE_REFRESH_SECONDS
    return max(settings.PRESENCE_TTL_SECONDS - refresh, 2 * refresh)


_tracker: PresenceTracker | None = None


def tracker() -> PresenceTracker:
    global _tracker
    if _tracker is None:
        if settings.REDIS_URL:
            backend: MemoryBackend | RedisBackend = RedisBackend(
                settings.REDIS_HOST, settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
            )
        else:
            backend = MemoryBackend()
        _tracker = PresenceTracker(backend)
    return _tracker
