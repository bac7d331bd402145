"""Where presence lives: per-trip sorted sets of socket entries with their expiry, and a version.

Each socket is an entry with an expiry in a per-trip sorted set (Redis when REDIS_URL is set,
process memory otherwise). Every change bumps a per-trip version, read in the same atomic step
as the state, so clients (and consumers) can drop a state older than one they have already seen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

import protocol
from events.batch import Batcher
from realtime import redis_clients
from realtime.presence_state import TripPresence

PRESENCE = "presence"
EDITING = "editing"


def presence_member(connection_id: str, user: Any) -> str:
    """A socket's presence entry: one per socket, carrying who it is so a read needs no query.
    `connection|user id|username`: split, not parsed, when a 2,000-member trip's state is read
    (the username last, so it may hold anything)."""
    return f"{connection_id}|{user.pk}|{user.get_username()}"


def editing_member(connection_id: str, user: Any, field: str) -> str:
    """A socket's editing entry for one field: `connection|user id|field|username`."""
    return f"{connection_id}|{user.pk}|{field}|{user.get_username()}"


def _user_id(raw: str) -> Any:
    return int(raw) if raw.isdecimal() else raw  # integer keys, as the database gives them


def _presence_entry(member: str) -> tuple[Any, str]:
    if member.startswith("["):  # the JSON entries of releases before issue 16
        _, user_id, username = json.loads(member)
        return user_id, username
    _, user_id, username = member.split("|", 2)
    return _user_id(user_id), username


def _editing_entry(member: str) -> tuple[Any, str, str]:
    if member.startswith("["):
        _, user_id, username, field = json.loads(member)
        return user_id, username, field
    _, user_id, field, username = member.split("|", 3)
    return _user_id(user_id), username, field


def summarize(
    version: int, presence: list[tuple[str, float]], editing: list[tuple[str, float]]
) -> TripPresence:
    """The state of a trip from its live entries: sockets counted per user, and each user's
    latest expiry per edited field."""
    counts: dict[tuple[Any, str], int] = defaultdict(int)
    for member, _ in presence:
        counts[_presence_entry(member)] += 1
    collaborators = [(user_id, username, n) for (user_id, username), n in sorted(counts.items())]
    latest: dict[tuple[Any, str, str], float] = {}
    for member, expires in editing:
        key = _editing_entry(member)
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


def _key_lifetime() -> int:
    """Abandoned keys vanish on their own."""
    return int(settings.PRESENCE_TTL_SECONDS + settings.EDITING_TTL_SECONDS) * 2


class MemoryBackend:
    """One process only (the embedded defaults)."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, float]] = defaultdict(dict)
        self.versions: dict[int, int] = defaultdict(int)

    async def add(self, trip_id: int, kind: str, member: str, expires: float) -> None:
        await self.touch(trip_id, kind, {member: expires})

    async def touch(self, trip_id: int, kind: str, members: dict[str, float]) -> int:
        entries = self.sets[f"{kind}-{trip_id}"]
        added = sum(member not in entries for member in members)
        entries.update(members)
        return added

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
        return summarize(self.versions[trip_id], pick(PRESENCE), pick(EDITING))


class RedisBackend:
    """Shared by every process on the same Redis. One client per event loop."""

    def __init__(self, host: dict[str, Any], prefix: str) -> None:
        self.host = host  # a host entry (realtime.redis_clients)
        self.prefix = prefix
        self._clients: dict[int, Any] = {}
        self._adds: Batcher[tuple[int, int, str, str, float], None] = Batcher(self._add_many)
        self._calls = itertools.count()

    def _client(self) -> Any:
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            # A blocking pool waits for a free connection; the default pool raises "Too many
            # connections" when a connect storm needs more than it holds.
            client = redis_clients.async_client(
                self.host,
                pool_timeout=10,
                max_connections=settings.REDIS_MAX_CONNECTIONS,
                socket_connect_timeout=5,
                socket_timeout=5,
            )
            self._clients[loop_id] = client
        return client

    def _key(self, trip_id: int, kind: str) -> str:
        return f"{self.prefix}-{kind}-trip-{trip_id}"

    async def add(self, trip_id: int, kind: str, member: str, expires: float) -> None:
        """One entry (a socket joining), written with those of the other sockets joining
        meanwhile: a connect storm costs a pipeline per batch, not one per socket."""
        await self._adds((next(self._calls), trip_id, kind, member, expires))

    async def _add_many(
        self, calls: list[tuple[int, int, str, str, float]]
    ) -> dict[tuple[int, int, str, str, float], None]:
        entries: dict[str, dict[str, float]] = defaultdict(dict)
        for _, trip_id, kind, member, expires in calls:
            entries[self._key(trip_id, kind)][member] = expires
        async with self._client().pipeline(transaction=False) as pipe:
            for key, members in entries.items():
                pipe.zadd(key, members)
                pipe.expire(key, _key_lifetime())
            await pipe.execute()
        return dict.fromkeys(calls)

    async def touch(self, trip_id: int, kind: str, members: dict[str, float]) -> int:
        """Add or renew entries; returns how many were missing (Redis lost them)."""
        if not members:
            return 0  # ZADD refuses an empty mapping
        key = self._key(trip_id, kind)
        async with self._client().pipeline(transaction=False) as pipe:
            pipe.zadd(key, members)
            pipe.expire(key, _key_lifetime())
            added, _ = await pipe.execute()
        return int(added)

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
            # A missing version (a new trip, or Redis lost its data) starts at the time in
            # microseconds: past every version counted since an earlier start, so sockets,
            # which drop a state no newer than the last they showed, take the rebuilt one.
            pipe.set(version_key, int(now * 1_000_000), nx=True)
            if bump:
                pipe.incr(version_key)
            else:
                pipe.get(version_key)
            pipe.expire(version_key, 86400)
            pipe.zrangebyscore(self._key(trip_id, PRESENCE), f"({now}", "+inf", withscores=True)
            pipe.zrangebyscore(self._key(trip_id, EDITING), f"({now}", "+inf", withscores=True)
            _, version, _, presence, editing = await pipe.execute()
        decode = lambda rows: [(m.decode(), float(s)) for m, s in rows]  # noqa: E731
        return summarize(int(version or 0), decode(presence), decode(editing))
