"""A trip's presence state as read from the store, and what a client sees of it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

import protocol


@dataclass(frozen=True)
class TripPresence:
    """A trip's presence at one version: who is connected, with how many sockets, and who is
    editing which field."""

    version: int
    # [(user_id, username, connections)], by user id: tuples, as a 1,000-member trip keeps one
    # entry per member cached in every process.
    collaborators: list[tuple[int, str, int]]
    editing: list[dict[str, Any]]  # [{"user": {id, username}, "field": f, "expires_at": iso}]
    count: int = -1  # distinct users; -1: len(collaborators), which then lists them all
    # Worked out once per state: every socket that joins or is sent this state asks for them.
    _ids: frozenset[int] | None = field(default=None, repr=False, compare=False)
    _digests: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def collaborator_count(self) -> int:
        return len(self.collaborators) if self.count < 0 else self.count

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
        socket (its own join, a sweep that changed nothing visible) is not sent to it. The same
        in every process (no str hash), and computed once per state and kind."""
        found = self._digests.get(kind)
        if found is None:
            if kind == "presence.update":
                limit = settings.PRESENCE_LIST_LIMIT
                fields: Any = (self.collaborators[:limit], self.collaborator_count)
            else:
                fields = [(e["user"]["id"], e["field"]) for e in self.editing]
            raw = repr(fields).encode()
            found = self._digests[kind] = hashlib.blake2b(raw, digest_size=8).hexdigest()
        return found

    def has_user(self, user_id: int) -> bool:
        ids = self._ids
        if ids is None:
            ids = frozenset(entry[0] for entry in self.collaborators)
            object.__setattr__(self, "_ids", ids)  # a cache: the state itself stays frozen
        return user_id in ids

    def with_connection(self, user: Any) -> TripPresence:
        """This state plus one more socket of `user` (a join not yet in a published state).
        Only the listed head is rebuilt, so a join into a 2,000-member trip stays cheap."""
        limit = settings.PRESENCE_LIST_LIMIT
        head = list(self.collaborators[: limit + 1])
        # Exact only when every collaborator is listed (a full state, as `join` caches).
        present = self.has_user(user.pk)
        if present:
            head = [(i, name, n + 1) if i == user.pk else (i, name, n) for i, name, n in head]
        elif not head or user.pk < head[-1][0] or len(self.collaborators) <= limit:
            head = sorted([*head, (user.pk, user.get_username(), 1)])[: limit + 1]
        joined = TripPresence(
            version=self.version,
            collaborators=head,
            editing=self.editing,
            count=self.collaborator_count + (0 if present else 1),
        )
        if "editing.update" in self._digests:
            joined._digests["editing.update"] = self._digests["editing.update"]
        return joined

    def presence_message(self) -> dict[str, Any]:
        return protocol.server_message(
            "presence.update", version=self.version, **self.presence_fields()
        )

    def editing_message(self) -> dict[str, Any]:
        return protocol.server_message("editing.update", version=self.version, editing=self.editing)
