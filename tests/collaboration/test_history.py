"""The history of a trip's field changes: GET /api/trips/<id>/history/ (collaboration.apis.trips,
selectors.field_history)."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from collaboration.models import TripEvent
from collaboration.services import conflicts
from tests import factories

pytestmark = pytest.mark.django_db


update = factories.update


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def history(user, trip, **params):
    response = as_user(user).get(f"/api/trips/{trip.pk}/history/", params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def crew():
    return factories.make_crew()


@pytest.fixture
def edited(crew):
    """alice sets the budget and the notes, bob changes another line of the notes from the same
    base (a merge), and a budget conflict is resolved by bob: five changes, versions 2-6."""
    alice, bob, carol, trip = crew
    update(trip, alice, "budget", "3000", 1)  # v2
    update(trip, alice, "notes", "Pack.\nFly.\n", 2)  # v3
    update(trip, alice, "notes", "Pack socks.\nFly.\n", 3)  # v4
    merged = update(trip, bob, "notes", "Pack.\nFly at nine.\n", 3)  # v5, merged with v4
    clash = update(trip, bob, "budget", "3500", 1)
    conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=clash.conflict_id, actor=bob, choice="mine"
    )  # v6
    assert merged.status == "merged"
    return alice, bob, carol, trip


def test_changes_of_every_field_newest_first_with_before_after_by_and_source(edited):
    _, bob, carol, trip = edited
    body = history(carol, trip)  # a viewer reads it too
    assert body["trip_id"] == trip.pk and body["field"] is None
    assert (body["has_more"], body["next_before"], body["log_floor"]) == (False, None, 0)
    changes = body["changes"]
    assert [(c["version"], c["field"], c["before"], c["after"], c["by"]["username"], c["source"])
            for c in changes] == [
        (6, "budget", "3000", "3500", "bob", "resolution"),
        (5, "notes", "Pack socks.\nFly.\n", "Pack socks.\nFly at nine.\n", "bob", "merge"),
        (4, "notes", "Pack.\nFly.\n", "Pack socks.\nFly.\n", "alice", "edit"),
        (3, "notes", "", "Pack.\nFly.\n", "alice", "edit"),
        (2, "budget", "0", "3000", "alice", "edit"),
    ]  # fmt: skip
    logged = TripEvent.objects.filter(trip=trip, type="trip.updated").order_by("-seq")
    assert [c["seq"] for c in changes] == [e.seq for e in logged]
    assert [c["update_id"] for c in changes] == [e.message["update_id"] for e in logged]
    assert [c["at"] for c in changes] == [e.message["timestamp"] for e in logged]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", c["at"]) for c in changes)
    assert changes[0]["by"] == {"id": bob.pk, "username": "bob"}


def test_one_fields_changes_in_pages_through_next_before(edited):
    alice, *_, trip = edited
    first = history(alice, trip, field="notes", limit=2)
    assert first["field"] == "notes" and first["has_more"] is True
    assert [c["version"] for c in first["changes"]] == [5, 4]
    assert first["next_before"] == first["changes"][-1]["seq"]
    second = history(alice, trip, field="notes", limit=2, before=first["next_before"])
    assert [c["version"] for c in second["changes"]] == [3]
    assert (second["has_more"], second["next_before"]) == (False, None)
    assert history(alice, trip, field="currency")["changes"] == []


def test_dates_and_budgets_are_wire_values(crew):
    alice, *_, trip = crew
    update(trip, alice, "start_date", "2027-05-14", 1)
    update(trip, alice, "start_date", None, 2)
    update(trip, alice, "budget", "1234.50", 3)
    changes = history(alice, trip)["changes"]
    assert [(c["field"], c["before"], c["after"]) for c in changes] == [
        ("budget", "0", "1234.50"),
        ("start_date", "2027-05-14", None),
        ("start_date", None, "2027-05-14"),
    ]


def test_changes_logged_before_before_was_kept_take_it_from_the_change_before_them(crew):
    alice, bob, _, trip = crew
    for version, notes in enumerate(["one", "two", "three", "four"], start=1):
        update(trip, alice if version % 2 else bob, "notes", notes, version)
    update(trip, alice, "name", "Porto", 5)
    TripEvent.objects.filter(trip=trip).update(before=None)  # as logged by the last release
    pages = [history(alice, trip, limit=2)]
    while pages[-1]["has_more"]:
        pages.append(history(alice, trip, limit=2, before=pages[-1]["next_before"]))
    changes = [c for page in pages for c in page["changes"]]
    assert [(c["field"], c["before"], c["after"]) for c in changes] == [
        ("name", None, "Porto"),  # the name the trip was made with was never logged
        ("notes", "three", "four"),
        ("notes", "two", "three"),  # from the page before it
        ("notes", "one", "two"),
        ("notes", None, "one"),
    ]


def test_the_log_floor_says_where_history_ends(crew, settings):
    settings.TRIP_EVENT_RETENTION = 3
    alice, *_, trip = crew
    for version in range(1, 8):
        update(trip, alice, "notes", f"n{version}", version)
    trip.refresh_from_db()
    body = history(alice, trip)
    assert body["log_floor"] == trip.log_floor > 0
    assert all(c["seq"] > trip.log_floor for c in body["changes"])
    assert body["changes"][-1]["before"] is not None and not body["has_more"]


def test_a_deleted_users_changes_show_no_one(crew):
    alice, bob, _, trip = crew
    update(trip, bob, "notes", "bob was here", 1)
    bob.delete()
    [change] = history(alice, trip)["changes"]
    assert change["by"] is None and change["after"] == "bob was here"


def test_only_members_read_it(crew):
    alice, *_, trip = crew
    stranger = factories.make_user("stranger")
    for trip_id in (trip.pk, trip.pk + 1000):
        response = as_user(stranger).get(f"/api/trips/{trip_id}/history/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    anonymous = APIClient().get(f"/api/trips/{trip.pk}/history/")
    assert anonymous.status_code == 401
    token = factories.access_token(alice)
    bearer = APIClient().get(f"/api/trips/{trip.pk}/history/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert bearer.status_code == 200 and bearer.json()["changes"] == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("field", "price"),
        ("field", ""),
        ("field", "NOTES"),
        ("before", "x"),
        ("before", "1.5"),
        ("before", "-1"),
        ("before", "0"),
        ("before", "1_0"),
        ("before", "\u0663"),  # an Arabic-Indic three: int() takes it
        ("before", " 3"),
        ("before", "9" * 19),  # past PostgreSQL's bigint
        ("before", "9" * 5000),  # past what int() parses
        ("limit", "0"),
        ("limit", "201"),
        ("limit", "ten"),
        ("limit", "-5"),
        ("limit", "9" * 5000),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(crew, name, value):
    alice, *_, trip = crew
    response = as_user(alice).get(f"/api/trips/{trip.pk}/history/", {name: value})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "INVALID_MESSAGE_FORMAT"
    assert list(error["details"]["fields"]) == [name]


def test_the_largest_before_is_accepted(crew):
    alice, *_, trip = crew
    update(trip, alice, "notes", "x", 1)
    assert len(history(alice, trip, before=str(2**63 - 1))["changes"]) == 1


@pytest.mark.parametrize("after", ["1_0", "\u0663", " 3", "+3"])
def test_the_event_log_takes_only_ascii_whole_numbers(crew, after):
    """int_param (shared by the REST endpoints) took what int() takes: "1_0" as 10, "٣" as 3."""
    alice, *_, trip = crew
    response = as_user(alice).get(f"/api/trips/{trip.pk}/events/", {"after": after})
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]["fields"]) == ["after"]
