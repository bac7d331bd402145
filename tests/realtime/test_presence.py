"""Presence state arithmetic: what a joining socket's snapshot shows."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

from realtime.presence import PresenceTracker
from realtime.presence_state import TripPresence
from realtime.presence_store import MemoryBackend, editing_member, presence_member, summarize


def user(pk: int) -> SimpleNamespace:
    return SimpleNamespace(pk=pk, get_username=lambda: f"u{pk}")


def state(n: int) -> TripPresence:
    return TripPresence(
        version=7, collaborators=[(i, f"u{i}", 1) for i in range(1, n + 1)], editing=[]
    )


def test_join_of_a_new_user_counts_and_lists_within_the_limit(settings):
    settings.PRESENCE_LIST_LIMIT = 50
    joined = state(3).with_connection(user(99)).presence_fields()
    assert joined["collaborator_count"] == 4
    assert [c["user"]["id"] for c in joined["collaborators"]] == [1, 2, 3, 99]
    assert joined["collaborators_truncated"] is False


def test_join_into_a_big_trip_keeps_the_count_exact_and_the_list_short(settings):
    settings.PRESENCE_LIST_LIMIT = 50
    big = state(2000)
    beyond = big.with_connection(user(5000)).presence_fields()
    assert beyond["collaborator_count"] == 2001
    assert len(beyond["collaborators"]) == 50 and beyond["collaborators_truncated"] is True
    again = big.with_connection(user(1500)).presence_fields()  # already there: one more socket
    assert again["collaborator_count"] == 2000
    listed = big.with_connection(user(2)).presence_fields()
    assert listed["collaborators"][1] == {"user": {"id": 2, "username": "u2"}, "connections": 2}


def test_digest_ignores_what_a_client_cannot_see(settings):
    settings.PRESENCE_LIST_LIMIT = 50
    a = state(60)
    b = TripPresence(version=8, collaborators=list(a.collaborators), editing=[])
    assert a.digest("presence.update") == b.digest("presence.update")
    assert a.digest("presence.update") != a.with_connection(user(61)).digest("presence.update")


def test_entries_read_back_whatever_the_username_holds_and_in_the_old_format_too():
    """Entries are `connection|user id|username` (split, not parsed, on every read of a
    2,000-member trip); a username may hold the separator, and the JSON entries written by
    releases before issue 16 (still in Redis during a rolling deploy) read the same."""
    odd = SimpleNamespace(pk=7, get_username=lambda: "a|b [c]")
    rows = [
        (presence_member("c1", odd), 0.0),
        (presence_member("c2", odd), 0.0),
        (json.dumps(["c3", 8, "old"]), 0.0),
    ]
    editing = [
        (editing_member("c1", odd, "notes"), 100.0),
        (json.dumps(["c3", 8, "old", "budget"]), 100.0),
    ]
    summary = summarize(3, rows, editing)
    assert summary.collaborators == [(7, "a|b [c]", 2), (8, "old", 1)]
    assert [(e["user"], e["field"]) for e in summary.editing] == [
        ({"id": 7, "username": "a|b [c]"}, "notes"),
        ({"id": 8, "username": "old"}, "budget"),
    ]


def test_a_state_is_hashed_once_per_kind(settings, monkeypatch):
    settings.PRESENCE_LIST_LIMIT = 50
    calls = []
    real = hashlib.blake2b
    monkeypatch.setattr(hashlib, "blake2b", lambda *a, **k: calls.append(1) or real(*a, **k))
    s = state(100)
    assert s.digest("presence.update") == s.digest("presence.update")
    assert s.digest("editing.update") == s.digest("editing.update")
    assert len(calls) == 2


def test_presence_goes_out_less_often_as_a_trip_grows_on_a_process(settings):
    """Each update costs a write per socket: the window grows with the trip's local sockets."""
    settings.PRESENCE_COALESCE_SECONDS = 0.25
    settings.PRESENCE_COALESCE_SOCKETS = 500
    tracker = PresenceTracker(MemoryBackend())
    assert tracker.coalesce_seconds(1) == 0.25
    tracker.local[1] = {f"c{i}": user(i) for i in range(400)}
    assert tracker.coalesce_seconds(1) == 0.25
    tracker.local[1] = {f"c{i}": user(i) for i in range(5000)}
    assert tracker.coalesce_seconds(1) == 2.5
