"""The trip REST API: same services, same rules, the seed's error envelope."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from collaboration.models import Conflict, TripEvent
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    return factories.make_crew()


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_list_shows_only_my_trips_and_create_makes_me_owner(crew):
    _, bob, _, trip = crew
    stranger = factories.make_user("stranger")
    assert as_user(stranger).get("/api/trips/").json() == []
    created = as_user(stranger).post(
        "/api/trips/", {"name": "Solo", "budget": "250.50", "currency": "USD"}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["role"] == "owner" and body["fields"]["budget"] == "250.50"
    assert [t["id"] for t in as_user(bob).get("/api/trips/").json()] == [trip.pk]


def test_create_validates_like_edits(crew):
    alice, *_ = crew
    response = as_user(alice).post(
        "/api/trips/", {"name": "Bad", "start_date": "2027-05-10", "end_date": "2027-05-01"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert "end_date" in response.json()["error"]["details"]["fields"]
    assert as_user(alice).post("/api/trips/", {"budget": 1}, format="json").status_code == 400
    assert (
        as_user(alice).post("/api/trips/", {"name": "x", "owner": 1}, format="json").status_code
        == 400
    )


def test_read_gives_etag_and_versions_and_hides_trips_from_strangers(crew):
    alice, *_, trip = crew
    response = as_user(alice).get(f"/api/trips/{trip.pk}/")
    assert response.status_code == 200 and response["ETag"] == '"1"'
    assert response.json()["version"] == 1
    stranger = factories.make_user("stranger")
    missing = as_user(stranger).get(f"/api/trips/{trip.pk}/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "AUTHORIZATION_FAILED"


def test_patch_needs_if_match(crew):
    alice, *_, trip = crew
    response = as_user(alice).patch(f"/api/trips/{trip.pk}/", {"name": "X"}, format="json")
    assert response.status_code == 428
    assert "If-Match" in response.json()["error"]["message"]


def test_patch_applies_and_returns_new_etag(crew):
    alice, *_, trip = crew
    response = as_user(alice).patch(
        f"/api/trips/{trip.pk}/",
        {"name": "Porto", "budget": 900},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert response.status_code == 200
    assert response["ETag"] == '"3"'
    assert response.json()["fields"]["name"] == "Porto"
    assert [r["status"] for r in response.json()["results"]] == ["applied", "applied"]


def test_stale_patch_gets_409_with_the_conflict(crew):
    alice, bob, *_, trip = crew
    as_user(alice).patch(
        f"/api/trips/{trip.pk}/", {"budget": 3000}, format="json", HTTP_IF_MATCH='"1"'
    )
    response = as_user(bob).patch(
        f"/api/trips/{trip.pk}/", {"budget": 3500}, format="json", HTTP_IF_MATCH='W/"1"'
    )
    assert response.status_code == 409
    conflict = response.json()["conflicts"][0]
    assert conflict["field"] == "budget"
    assert (conflict["applied"]["value"], conflict["proposed"]["value"]) == ("3000", "3500")
    assert response.json()["fields"]["budget"] == "3000"


def test_same_idempotency_key_applies_once(crew):
    alice, *_, trip = crew
    for _ in range(3):
        response = as_user(alice).patch(
            f"/api/trips/{trip.pk}/", {"notes": "hi"}, format="json",
            HTTP_IF_MATCH='"1"', HTTP_IDEMPOTENCY_KEY="retry-me",
        )  # fmt: skip
        assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "duplicate"
    assert response.json()["version"] == 2


def test_viewer_patch_is_forbidden_and_bad_values_are_400(crew):
    alice, _, carol, trip = crew
    forbidden = as_user(carol).patch(
        f"/api/trips/{trip.pk}/", {"name": "X"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    bad = as_user(alice).patch(
        f"/api/trips/{trip.pk}/", {"name": "ok", "budget": -1}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert bad.status_code == 400 and "budget" in bad.json()["error"]["details"]["fields"]
    trip.refresh_from_db()
    assert trip.name != "ok" and trip.version == 1  # nothing of a refused PATCH is stored


def test_members_listed_by_anyone_managed_by_owner(crew):
    alice, bob, carol, trip = crew
    factories.make_user("dave")
    listed = as_user(carol).get(f"/api/trips/{trip.pk}/members/").json()
    assert {m["user"]["username"]: m["role"] for m in listed} == {
        "alice": "owner", "bob": "editor", "carol": "viewer"
    }  # fmt: skip
    url = f"/api/trips/{trip.pk}/members/"
    assert (
        as_user(bob).post(url, {"username": "dave", "role": "editor"}, format="json").status_code
        == 403
    )
    added = as_user(alice).post(url, {"username": "dave", "role": "editor"}, format="json")
    assert added.status_code == 200 and added.json()["role"] == "editor"
    assert (
        as_user(alice)
        .post(url, {"username": "nobody", "role": "editor"}, format="json")
        .status_code
        == 400
    )
    assert as_user(alice).delete(f"{url}{carol.pk}/").status_code == 204
    assert as_user(alice).delete(f"{url}{alice.pk}/").status_code == 400  # last owner stays


def test_events_after_a_seq_and_410_once_pruned(crew, settings):
    alice, *_, trip = crew
    trip.refresh_from_db()
    start = trip.seq
    for i in range(3):
        as_user(alice).patch(
            f"/api/trips/{trip.pk}/", {"notes": f"n{i}"}, format="json", HTTP_IF_MATCH=f'"{i + 1}"'
        )
    page = as_user(alice).get(f"/api/trips/{trip.pk}/events/?after={start}").json()
    assert [e["seq"] for e in page["events"]] == [start + 1, start + 2, start + 3]
    assert page["events"][0] == TripEvent.objects.get(trip=trip, seq=start + 1).message
    assert page["has_more"] is False
    limited = as_user(alice).get(f"/api/trips/{trip.pk}/events/?after={start}&limit=2").json()
    assert len(limited["events"]) == 2 and limited["has_more"] is True
    assert as_user(alice).get(f"/api/trips/{trip.pk}/events/?after=x").status_code == 400

    settings.TRIP_EVENT_RETENTION = 2
    for i in range(3, 10):
        as_user(alice).patch(
            f"/api/trips/{trip.pk}/", {"notes": f"n{i}"}, format="json", HTTP_IF_MATCH=f'"{i + 1}"'
        )
    gone = as_user(alice).get(f"/api/trips/{trip.pk}/events/?after={start}")
    assert gone.status_code == 410 and gone.json()["resync_required"] is True


def test_conflicts_listed_and_resolved_over_rest(crew):
    alice, bob, *_, trip = crew
    as_user(alice).patch(
        f"/api/trips/{trip.pk}/", {"budget": 3000}, format="json", HTTP_IF_MATCH='"1"'
    )
    as_user(bob).patch(
        f"/api/trips/{trip.pk}/", {"budget": 3500}, format="json", HTTP_IF_MATCH='"1"'
    )
    open_ = as_user(alice).get(f"/api/trips/{trip.pk}/conflicts/?status=open").json()
    assert len(open_) == 1
    url = f"/api/trips/{trip.pk}/conflicts/{open_[0]['id']}/resolve/"
    assert as_user(bob).post(url, {"choice": "mine", "value": 1}, format="json").status_code == 400
    resolved = as_user(bob).post(url, {"choice": "mine"}, format="json")
    assert resolved.status_code == 200
    assert resolved.json()["conflict"]["status"] == "resolved"
    trip.refresh_from_db()
    assert str(trip.budget) == "3500.00"
    assert Conflict.objects.get().resolved_by == bob
    assert as_user(alice).get(f"/api/trips/{trip.pk}/conflicts/?status=bogus").status_code == 400


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("name", "a\u0000b", "NUL"),
        ("destination", "Lis\u0000bon", "NUL"),
        ("notes", "pack \ud800 socks", "surrogate"),
        ("name", "\udfff", "surrogate"),
    ],
)
def test_text_the_database_refuses_is_the_fields_validation_error(crew, field, value, problem):
    alice, *_, trip = crew
    # As a client sends them: JSON escapes ("\\u0000", "\\ud800"), which parse into these strings.
    patched = as_user(alice).patch(
        f"/api/trips/{trip.pk}/",
        json.dumps({field: value}),
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
    )
    created = as_user(alice).post(
        "/api/trips/", json.dumps({"name": "Ok", field: value}), content_type="application/json"
    )
    for response in (patched, created):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "INVALID_MESSAGE_FORMAT"
        assert field in error["details"]["fields"]
        assert problem in str(error["details"]["fields"][field])
    trip.refresh_from_db()
    assert trip.version == 1 and getattr(trip, field) != value


@pytest.mark.parametrize("if_match", ['"' + "9" * 5000 + '"', "9" * 19, '"\u00b2"', '"\u0663"'])
def test_an_if_match_that_is_no_trip_version_is_a_400(crew, if_match):
    alice, *_, trip = crew
    response = as_user(alice).patch(
        f"/api/trips/{trip.pk}/", {"name": "X"}, format="json", HTTP_IF_MATCH=if_match
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert "If-Match" in response.json()["error"]["details"]["fields"]


# Refusals whose message repeats what was sent: an unknown field's name, a choice that is none of
# the choices. As a client sends them: JSON's "\\ud800" escape parses into a lone surrogate.
ECHOING_REQUESTS = {
    "create-unknown-field": ("post", "/api/trips/", {"name": "Ok", "note\ud800s": "x"}),
    "patch-unknown-field": ("patch", "/api/trips/{trip}/", {"\udfff": "x"}),
    "member-role": ("post", "/api/trips/{trip}/members/", {"username": "bob", "role": "\udfffo"}),
    "resolve-choice": (
        "post",
        "/api/trips/{trip}/conflicts/{conflict}/resolve/",
        {"choice": "\ud800mine"},
    ),
}


@pytest.mark.parametrize("request_name", ECHOING_REQUESTS)
def test_a_refusal_that_echoes_a_lone_surrogate_is_a_400_not_a_500(crew, request_name):
    alice, bob, _, trip = crew
    as_user(bob).patch(f"/api/trips/{trip.pk}/", {"budget": 1}, format="json", HTTP_IF_MATCH='"1"')
    as_user(alice).patch(
        f"/api/trips/{trip.pk}/", {"budget": 2}, format="json", HTTP_IF_MATCH='"1"'
    )  # a conflict to resolve
    method, url, body = ECHOING_REQUESTS[request_name]
    response = getattr(as_user(alice), method)(
        url.format(trip=trip.pk, conflict=Conflict.objects.get().pk),
        json.dumps(body),
        content_type="application/json",
        HTTP_IF_MATCH='"2"',
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "INVALID_MESSAGE_FORMAT"
    # The echo is text: each lone surrogate is U+FFFD, the replacement character.
    assert "\ufffd" in json.dumps(error["details"]["fields"], ensure_ascii=False)
    trip.refresh_from_db()
    assert trip.version == 2 and trip.members.count() == 3
