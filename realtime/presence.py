"""Presence and editing indicators, right across server processes.

Each socket is an entry with an expiry in a per-trip sorted set (Redis when REDIS_URL is set,
process memory otherwise). One keeper task per process renews its own sockets' entries and sweeps
expired ones, so a process that dies drops out of presence by itself within the TTL; disconnect
handlers only make it faster. Every change bumps a per-trip version, read in the same atomic step
as the state, so clients (and consumers) can drop a state older than one they have already seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

import protocol
from events.broadcast import broadcast_now
from events.groups import trip_group

logger = logging.getLogger(__name__)

PRESENCE = "presence"
EDITING = "editing"


@dataclass(frozen=True)
class TripPresence:
    version: int
    # [(user_id, username, connections)], by user id: tuples, as a 1,000-member trip keeps one
    # entry per member cached in every process.
    collaborators: list[tuple[int, str, int]]
    editing: list[dict[str, Any]]
    count: int = -1  # distinct users; -1: len(collaborators), which then lists them all

    @property
    def collaborator_count(self) -> int:
        return (
            len(self.collaborators) if self.count < 0 else self.count
        )  # [{"user": {id, username}, "field": f, "expires_at": iso}]

    def presence_fields(self) -> dict[str, Any]:
        """The count is exact; the list stops at PRESENCE_LIST_LIMIT users, so that presence in a
        1,000-member trip costs kilobytes per update, not tens of kilobytes per recipient."""
        limit = settings.PRESENCE_LIST_LIMIT
        return {
            "collaborators": [
                {"user": {"id": user_id, "username": username}, "connections": n}
                for user_id, username, n in self.collaborators[:limit]
            ],
            "collaborator_count": self.collaborator_count,
            "collaborators_truncated": self.collaborator_count > limit,
        }

    def digest(self, kind: str) -> str:
        """What a client sees of this state, hashed: an update that would show nothing new to a
        socket (its own join, a sweep that changed nothing visible) is not sent to it."""
        if kind == "presence.update":
            fields: Any = self.presence_fields()
        else:
            fields = [(e["user"]["id"], e["field"]) for e in self.editing]
        raw = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.blake2b(raw, digest_size=8).hexdigest()

    def with_connection(self, user: Any) -> TripPresence:
        """This state plus one more socket of `user` (a join not yet in a published state).
        Only the listed head is rebuilt, so a join into a 2,000-member trip stays cheap."""
        limit = settings.PRESENCE_LIST_LIMIT
        head = list(self.collaborators[: limit + 1])
        present = any(entry[0] == user.pk for entry in self.collaborators)
        if present:
            head = [(i, name, n + 1) if i == user.pk else (i, name, n) for i, name, n in head]
        elif not head or user.pk < head[-1][0] or len(self.collaborators) <= limit:
            head = sorted([*head, (user.pk, user.get_username(), 1)])[: limit + 1]
        return TripPresence(
            version=self.version,
            collaborators=head,
            editing=self.editing,
            count=self.collaborator_count + (0 if present else 1),
        )

    def presence_message(self) -> dict[str, Any]:
        return protocol.server_message(
            "presence.update", version=self.version, **self.presence_fields()
        )

    def editing_message(self) -> dict[str, Any]:
        return protocol.server_message("editing.update", version=self.version, editing=self.editing)


def _presence_member(connection_id: str, user: Any) -> str:
    return json.dumps([connection_id, user.pk, user.get_username()])


def _editing_member(connection_id: str, user: Any, field: str) -> str:
    return json.dumps([connection_id, user.pk, user.get_username(), field])


def _summarize(
    version: int, presence: list[tuple[str, float]], editing: list[tuple[str, float]]
) -> TripPresence:
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for member, _ in presence:
        _, user_id, username = json.loads(member)
        counts[(user_id, username)] += 1
    collaborators = [(user_id, username, n) for (user_id, username), n in sorted(counts.items())]
    latest: dict[tuple[int, str, str], float] = {}
    for member, expires in editing:
        _, user_id, username, field = json.loads(member)
        key = (user_id, username, field)
        latest[key] = max(latest.get(key, 0.0), expires)
    editing_list = [
        {
            "user": {"id": user_id, "username": username},
            "field": field,
            "expires_at": _iso_epoch(expires),
        }
        for (user_id, username, field), expires in sorted(latest.items())
    ]
    return TripPresence(version=version, collaborators=collaborators, editing=editing_list)


def _iso_epoch(epoch: float) -> str:
    return protocol.iso(datetime.fromtimestamp(epoch, UTC))


class MemoryBackend:
    """One process only (the embedded defaults)."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, float]] = defaultdict(dict)
        self.versions: dict[int, int] = defaultdict(int)

    async def touch(self, trip_id: int, kind: str, members: dict[str, float]) -> None:
        self.sets[f"{kind}-{trip_id}"].update(members)

    async def remove(self, trip_id: int, kind: str, members: list[str]) -> int:
        entries = self.sets[f"{kind}-{trip_id}"]
        return sum(entries.pop(member, None) is not None for member in members)

    async def members(self, trip_id: int, kind: str) -> list[str]:
        return list(self.sets[f"{kind}-{trip_id}"])

    async def sweep(self, trip_id: int, now: float) -> int:
        removed = 0
        for kind in (PRESENCE, EDITING):
            entries = self.sets[f"{kind}-{trip_id}"]
            for member in [m for m, expires in entries.items() if expires <= now]:
                del entries[member]
                removed += 1
        return removed

    async def state(self, trip_id: int, now: float, *, bump: bool) -> TripPresence:
        if bump:
            self.versions[trip_id] += 1
        pick = lambda kind: [  # noqa: E731
            (m, e) for m, e in self.sets[f"{kind}-{trip_id}"].items() if e > now
        ]
        return _summarize(self.versions[trip_id], pick(PRESENCE), pick(EDITING))


class RedisBackend:
    """Shared by every process on the same Redis. One client per event loop."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._clients: dict[int, Any] = {}

    def _client(self) -> Any:
        import redis.asyncio as aioredis

        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            # A blocking pool waits for a free connection; the default pool raises "Too many
            # connections" when a connect storm needs more than it holds.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=settings.REDIS_MAX_CONNECTIONS,
                timeout=10,
                socket_connect_timeout=5,
                socket_timeout=5,
            )
            client = aioredis.Redis(connection_pool=pool)
            self._clients[loop_id] = client
        return client

    def _key(self, trip_id: int, kind: str) -> str:
        return f"{self.prefix}-{kind}-trip-{trip_id}"

    async def touch(self, trip_id: int, kind: str, members: dict[str, float]) -> None:
        key = self._key(trip_id, kind)
        async with self._client().pipeline(transaction=False) as pipe:
            pipe.zadd(key, members)
            # Abandoned keys vanish on their own.
            pipe.expire(key, int(settings.PRESENCE_TTL_SECONDS + settings.EDITING_TTL_SECONDS) * 2)
            await pipe.execute()

    async def remove(self, trip_id: int, kind: str, members: list[str]) -> int:
        if not members:
            return 0
        return int(await self._client().zrem(self._key(trip_id, kind), *members))

    async def members(self, trip_id: int, kind: str) -> list[str]:
        raw = await self._client().zrange(self._key(trip_id, kind), 0, -1)
        return [m.decode() for m in raw]

    async def sweep(self, trip_id: int, now: float) -> int:
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(self._key(trip_id, PRESENCE), "-inf", now)
            pipe.zremrangebyscore(self._key(trip_id, EDITING), "-inf", now)
            removed = await pipe.execute()
        return int(sum(removed))

    async def state(self, trip_id: int, now: float, *, bump: bool) -> TripPresence:
        version_key = self._key(trip_id, "version")
        async with self._client().pipeline(transaction=True) as pipe:
            if bump:
                pipe.incr(version_key)
            else:
                pipe.get(version_key)
            pipe.expire(version_key, 86400)
            pipe.zrangebyscore(self._key(trip_id, PRESENCE), f"({now}", "+inf", withscores=True)
            pipe.zrangebyscore(self._key(trip_id, EDITING), f"({now}", "+inf", withscores=True)
            version, _, presence, editing = await pipe.execute()
        decode = lambda rows: [(m.decode(), float(s)) for m, s in rows]  # noqa: E731
        return _summarize(int(version or 0), decode(presence), decode(editing))


class PresenceTracker:
    """This process's view: which local sockets are on which trip, and the keeper task."""

    def __init__(self, backend: MemoryBackend | RedisBackend) -> None:
        self.backend = backend
        self.local: dict[int, dict[str, Any]] = defaultdict(dict)  # trip -> connection -> user
        self.editing: dict[tuple[int, str], set[str]] = defaultdict(set)  # (trip, conn) -> fields
        self._keeper: asyncio.Task[None] | None = None
        self._pending: dict[int, dict[str, bool]] = {}  # trip -> what changed since last publish
        # The last state read per trip with local sockets: a join answers from it (plus itself)
        # instead of reading every entry again, so a storm of N joins costs O(N), not O(N^2).
        self.states: dict[int, TripPresence] = {}

    # -- changes ------------------------------------------------------------------------------

    async def join(self, trip_id: int, connection_id: str, user: Any) -> TripPresence:
        self.local[trip_id][connection_id] = user
        self._ensure_keeper()
        expires = time.time() + settings.PRESENCE_TTL_SECONDS
        await self.backend.touch(
            trip_id, PRESENCE, {_presence_member(connection_id, user): expires}
        )
        self._publish(trip_id, presence=True, editing=False)
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
        fields = self.editing.pop((trip_id, connection_id), set())
        await self.backend.remove(trip_id, PRESENCE, [_presence_member(connection_id, user)])
        if fields:
            await self.backend.remove(
                trip_id, EDITING, [_editing_member(connection_id, user, f) for f in fields]
            )
        self._publish(trip_id, presence=True, editing=bool(fields))

    async def editing_start(self, trip_id: int, connection_id: str, user: Any, field: str) -> None:
        self.editing[(trip_id, connection_id)].add(field)
        expires = time.time() + settings.EDITING_TTL_SECONDS
        await self.backend.touch(
            trip_id, EDITING, {_editing_member(connection_id, user, field): expires}
        )
        self._publish(trip_id, presence=False, editing=True)

    async def editing_stop(self, trip_id: int, connection_id: str, user: Any, field: str) -> None:
        self.editing[(trip_id, connection_id)].discard(field)
        await self.backend.remove(trip_id, EDITING, [_editing_member(connection_id, user, field)])
        self._publish(trip_id, presence=False, editing=True)

    async def current(self, trip_id: int) -> TripPresence:
        return await self.backend.state(trip_id, time.time(), bump=False)

    def _publish(self, trip_id: int, *, presence: bool, editing: bool) -> None:
        """Coalesce: changes within PRESENCE_COALESCE_SECONDS go out as one update per kind, so
        a connect storm into one trip costs a few broadcasts, not one per socket."""
        pending = self._pending.get(trip_id)
        if pending is not None:
            pending["presence"] |= presence
            pending["editing"] |= editing
            return
        self._pending[trip_id] = {"presence": presence, "editing": editing}
        loop = asyncio.get_running_loop()
        loop.call_later(
            settings.PRESENCE_COALESCE_SECONDS, lambda: loop.create_task(self._flush(trip_id))
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
        """Renew this process's entries, then sweep expired ones (any process's) on its trips."""
        now = time.time()
        for trip_id, connections in list(self.local.items()):
            presence = {
                _presence_member(conn, user): now + settings.PRESENCE_TTL_SECONDS
                for conn, user in connections.items()
            }
            await self.backend.touch(trip_id, PRESENCE, presence)
            if await self.backend.sweep(trip_id, now):
                self._publish(trip_id, presence=True, editing=True)


_tracker: PresenceTracker | None = None


def tracker() -> PresenceTracker:
    global _tracker
    if _tracker is None:
        if settings.REDIS_URL:
            backend: MemoryBackend | RedisBackend = RedisBackend(
                settings.REDIS_URL, settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
            )
        else:
            backend = MemoryBackend()
        _tracker = PresenceTracker(backend)
    return _tracker
