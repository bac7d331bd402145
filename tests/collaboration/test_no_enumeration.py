"""No enumeration (issue 20 item 2, docs/decisions.md "No enumeration"): a caller without rights
to a trip (or to the object) gets the same answer whether or not the user or object it names
exists: the same status, the same body (keys, error code and message). Timing is not asserted
(tests never assert a time): the code path is the same instead, rights checked before the target
is looked up."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from agents.models import AgentRun
from collaboration.models import Conflict, Notification
from collaboration.services.notifications import notify
from tests import factories

pytestmark = pytest.mark.django_db

MISSING = 987_654_321  # an id no row has


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def answer(response) -> tuple[int, Any]:
    """What a caller sees: the status and the body, less the envelope's own `id` and
    `timestamp` (different on every answer). HTML pages: the status and the page's text."""
    if not response.content:
        return response.status_code, None
    if response["Content-Type"].startswith("application/json"):
        body = response.json()
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in ("id", "timestamp")}
        return response.status_code, body
    return response.status_code, response.content.decode()


def test_adding_a_member_as_a_non_member_does_not_reveal_whether_the_username_exists():
    *_, trip = factories.make_crew()
    factories.make_user("dave")
    stranger = as_user(factories.make_user("stranger"))
    url = f"/api/trips/{trip.pk}/members/"
    existing = stranger.post(url, {"username": "dave", "role": "viewer"}, format="json")
    unknown = stranger.post(url, {"username": "nobody-here", "role": "viewer"}, format="json")
    assert answer(existing) == answer(unknown)
    assert existing.status_code == 404
    assert existing.json()["error"]["code"] == "AUTHORIZATION_FAILED"


def test_an_owner_still_learns_that_a_username_does_not_exist():
    alice, _, _, trip = factories.make_crew()
    response = as_user(alice).post(
        f"/api/trips/{trip.pk}/members/",
        {"username": "nobody-here", "role": "viewer"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"] == {
        "username": ["no active user with this username"]
    }


# -- the table: every route with an id or a username, every body field naming one -------------


@dataclass
class World:
    alice: Any  # owns the trip
    bob: Any  # edits
    carol: Any  # views
    stranger: Any  # signed in, member of nothing
    dave: Any  # exists, member of nothing here
    trip: Any
    other_trip: Any  # dave's own trip
    conflict: Conflict
    other_conflict: Conflict  # on dave's trip
    dave_run: AgentRun
    dave_notification: Notification


@pytest.fixture
def world() -> World:
    alice, bob, carol, trip = factories.make_crew()
    stranger = factories.make_user("stranger")
    dave = factories.make_user("dave")
    other_trip = factories.make_trip(dave, {factories.make_user("erin"): "editor"})
    erin = other_trip.members.get(role="editor").user

    def conflict_on(t, first, second):
        factories.update(t, first, "budget", 100, base_version=t.version)
        factories.update(t, second, "budget", 200, base_version=t.version)
        return Conflict.objects.filter(trip=t).latest("id")

    conflict = conflict_on(trip, alice, bob)
    trip.refresh_from_db()
    other_conflict = conflict_on(other_trip, dave, erin)
    return World(
        alice=alice,
        bob=bob,
        carol=carol,
        stranger=stranger,
        dave=dave,
        trip=trip,
        other_trip=other_trip,
        conflict=conflict,
        other_conflict=other_conflict,
        dave_run=AgentRun.objects.create(owner=dave, agent="planner", trip=other_trip),
        dave_notification=notify(recipient=dave, kind="mention", title="hi"),
    )


@dataclass
class Case:
    """`caller` calls `method path(target)` with `body(target)`, target existing or not."""

    name: str
    caller: str  # an attribute of World
    method: str
    path: Callable[[World, bool], str]
    body: Callable[[World, bool], Any] = field(default=lambda w, exists: None)
    headers: dict[str, str] = field(default_factory=dict)
    refused: tuple[int, ...] = (403, 404)  # the status of a refusal
    page: bool = False  # an HTML page, signed in with a session


def trip_id(w: World, exists: bool) -> int:
    return w.trip.pk if exists else MISSING


# Every route (REST, pages) whose path names an id or a username, with its cases. A route added
# with such a parameter fails test_every_route_with_an_id_is_in_the_table until it is listed here.
TABLE: dict[str, list[Case]] = {
    "api/trips/<int:trip_id>/": [
        Case("read", "stranger", "get", lambda w, e: f"/api/trips/{trip_id(w, e)}/"),
        Case(
            "patch",
            "stranger",
            "patch",
            lambda w, e: f"/api/trips/{trip_id(w, e)}/",
            body=lambda w, e: {"name": "X"},
            headers={"HTTP_IF_MATCH": '"1"'},
        ),
    ],
    "api/trips/<int:trip_id>/members/": [
        Case("list", "stranger", "get", lambda w, e: f"/api/trips/{trip_id(w, e)}/members/"),
        *[
            Case(
                f"add by username as {who}",
                who,
                "post",
                lambda w, e: f"/api/trips/{w.trip.pk}/members/",
                body=lambda w, e: {"username": "dave" if e else "nobody-here", "role": "viewer"},
            )
            for who in ("stranger", "carol", "bob")
        ],
        Case(
            "add to a trip",
            "stranger",
            "post",
            lambda w, e: f"/api/trips/{trip_id(w, e)}/members/",
            body=lambda w, e: {"username": "dave", "role": "viewer"},
        ),
    ],
    "api/trips/<int:trip_id>/members/<int:user_id>/": [
        *[
            Case(
                f"remove a user id as {who}",
                who,
                "delete",
                lambda w, e: f"/api/trips/{w.trip.pk}/members/{w.dave.pk if e else MISSING}/",
            )
            for who in ("stranger", "carol", "bob")
        ],
        Case(
            "remove a member's id as a viewer",
            "carol",
            "delete",
            lambda w, e: f"/api/trips/{w.trip.pk}/members/{w.bob.pk if e else MISSING}/",
        ),
        Case(
            "remove from a trip",
            "stranger",
            "delete",
            lambda w, e: f"/api/trips/{trip_id(w, e)}/members/{w.alice.pk}/",
        ),
    ],
    "api/trips/<int:trip_id>/events/": [
        Case("events", "stranger", "get", lambda w, e: f"/api/trips/{trip_id(w, e)}/events/"),
    ],
    "api/trips/<int:trip_id>/history/": [
        Case("history", "stranger", "get", lambda w, e: f"/api/trips/{trip_id(w, e)}/history/"),
    ],
    "api/trips/<int:trip_id>/conflicts/": [
        Case("list", "stranger", "get", lambda w, e: f"/api/trips/{trip_id(w, e)}/conflicts/"),
    ],
    "api/trips/<int:trip_id>/conflicts/<int:conflict_id>/resolve/": [
        *[
            Case(
                f"resolve a conflict id as {who}",
                who,
                "post",
                lambda w, e: (
                    f"/api/trips/{w.trip.pk}/conflicts/{w.conflict.pk if e else MISSING}/resolve/"
                ),
                body=lambda w, e: {"choice": "value", "value": 5},
            )
            for who in ("stranger", "carol")
        ],
        Case(
            "another trip's conflict id",
            "bob",
            "post",
            lambda w, e: (
                f"/api/trips/{w.trip.pk}/conflicts/{w.other_conflict.pk if e else MISSING}/resolve/"
            ),
            body=lambda w, e: {"choice": "value", "value": 5},
        ),
        Case(
            "resolve on a trip",
            "stranger",
            "post",
            lambda w, e: f"/api/trips/{trip_id(w, e)}/conflicts/{w.conflict.pk}/resolve/",
            body=lambda w, e: {"choice": "value", "value": 5},
        ),
    ],
    "api/trips/<int:trip_id>/chat/": [
        Case("read", "stranger", "get", lambda w, e: f"/api/trips/{trip_id(w, e)}/chat/"),
        Case(
            "post",
            "stranger",
            "post",
            lambda w, e: f"/api/trips/{trip_id(w, e)}/chat/",
            body=lambda w, e: {"text": "hello", "client_id": str(uuid.uuid4())},
        ),
    ],
    "api/agents/runs/<int:run_id>/": [
        Case(
            "read",
            "stranger",
            "get",
            lambda w, e: f"/api/agents/runs/{w.dave_run.pk if e else MISSING}/",
        ),
    ],
    "api/agents/runs/<int:run_id>/cancel/": [
        Case(
            "cancel",
            "stranger",
            "post",
            lambda w, e: f"/api/agents/runs/{w.dave_run.pk if e else MISSING}/cancel/",
        ),
    ],
    "api/agents/runs/<int:run_id>/status/": [  # staff and the agent service only
        Case(
            "report",
            "stranger",
            "post",
            lambda w, e: f"/api/agents/runs/{w.dave_run.pk if e else MISSING}/status/",
            body=lambda w, e: {"progress": 5},
        ),
    ],
    "api/notifications/<int:notification_id>/read/": [
        Case(
            "mark read",
            "stranger",
            "post",
            lambda w, e: f"/api/notifications/{w.dave_notification.pk if e else MISSING}/read/",
        ),
    ],
    "api/metrics/connections/<str:connection_id>/": [  # staff only
        Case(
            "per connection",
            "stranger",
            "get",
            lambda w, e: f"/api/metrics/connections/{'c-1' if e else 'no-such-connection'}/",
        ),
    ],
    "trips/<int:trip_id>/edit": [
        Case(  # "You are not a member of this trip", as a page
            "the edit page",
            "stranger",
            "get",
            lambda w, e: f"/trips/{trip_id(w, e)}/edit",
            page=True,
        ),
    ],
}

# Body fields that name a user or an object, on routes without a parameter.
BODY_CASES = [
    Case(
        "start an agent run for a trip (trip_id)",
        "stranger",
        "post",
        lambda w, e: "/api/agents/runs/",
        body=lambda w, e: {"agent": "planner", "trip_id": trip_id(w, e)},
    ),
]


def _routes(patterns: list, prefix: str = "") -> list[str]:
    found = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route.startswith(("admin/", "api-auth/")):
                continue  # Django's admin is out of scope; DRF's login takes no ids
            found += _routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            found.append(route)
    return found


def test_every_route_with_an_id_is_in_the_table():
    with_parameters = {route for route in _routes(get_resolver().url_patterns) if "<" in route}
    assert with_parameters == set(TABLE)


def _call(w: World, case: Case, exists: bool):
    if case.page:
        session = Client()
        session.force_login(getattr(w, case.caller))
        response = session.get(case.path(w, exists))
        # The page names the trip id it was asked for; its CSRF token is new on every answer.
        text = response.content.decode().replace(str(trip_id(w, exists)), "<trip_id>")
        response.content = re.sub(r'(csrfmiddlewaretoken" value=)"[^"]*"', r"\1", text).encode()
        return response
    client = as_user(getattr(w, case.caller))
    body = case.body(w, exists)
    return getattr(client, case.method)(
        case.path(w, exists), body, format="json" if body is not None else None, **case.headers
    )


@pytest.mark.parametrize(
    "case",
    [case for cases in TABLE.values() for case in cases] + BODY_CASES,
    ids=lambda case: f"{case.method} {case.name}",
)
def test_a_caller_without_rights_gets_the_same_answer_for_a_target_that_exists_or_not(world, case):
    existing = _call(world, case, True)
    missing = _call(world, case, False)
    assert existing.status_code in case.refused
    assert answer(existing) == answer(missing)
