"""Presence state arithmetic: what a joining socket's snapshot shows."""

from __future__ import annotations

from types import SimpleNamespace

from realtime.presence_state import TripPresence


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
