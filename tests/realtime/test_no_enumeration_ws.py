"""No enumeration on sockets (issue 20 item 2, docs/decisions.md "No enumeration"): a signed-in
non-member connecting to a trip's socket, or to the socket of a trip id that does not exist,
gets the same close code and the same error envelope; a message naming someone else's object
gets the answer of one that does not exist. Real daphne, real sockets."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from agents.models import AgentRun
from collaboration.services.notifications import notify
from realtime.routing import websocket_urlpatterns
from tests import factories
from tests.wsclient import closed_with, connect, open_socket, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)

MISSING = 987_654_321

# The socket routes that name a trip, as "ws/.../<int:trip_id>/" with the trip id's place.
TRIP_ROUTES = {
    "ws/trips/<int:trip_id>/": "/ws/trips/{trip_id}/",
    "ws/chat/<int:trip_id>/": "/ws/chat/{trip_id}/",
}


def test_every_socket_route_with_an_id_is_checked():
    with_parameters = {str(p.pattern) for p in websocket_urlpatterns if "<" in str(p.pattern)}
    assert with_parameters == set(TRIP_ROUTES)


def _seen(message: dict[str, Any], target: int, name: str = "trip_id") -> dict[str, Any]:
    """The message less its own `id` and `timestamp`, with the id the caller sent (which the
    error's details echo) as a placeholder."""
    seen = {k: v for k, v in message.items() if k not in ("id", "timestamp")}
    details = seen.get("error", {}).get("details", {})
    if details.get(name) == target:
        details[name] = f"<{name}>"
    return seen


@sync_to_async
def _world() -> tuple[int, str]:
    owner = factories.make_user("owner")
    trip = factories.make_trip(owner)
    return trip.pk, factories.access_token(factories.make_user("stranger"))


@pytest.mark.parametrize("route", sorted(TRIP_ROUTES))
async def test_a_non_member_is_refused_alike_whether_the_trip_exists_or_not(live, route):
    trip_id, token = await _world()
    answers = []
    for target in (trip_id, MISSING):
        ws = await open_socket(live.ws_url, TRIP_ROUTES[route].format(trip_id=target))
        await send_json(ws, {"token": token, "id": "a"})
        code, messages = await closed_with(ws)
        answers.append((code, [_seen(m, target) for m in messages]))
    assert answers[0] == answers[1]
    code, messages = answers[0]
    assert code == 4003
    assert messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"


@sync_to_async
def _someone_elses() -> tuple[int, int, str]:
    """Dave's agent run and notification, and a token for a stranger to them."""
    dave = factories.make_user("dave")
    run = AgentRun.objects.create(owner=dave, agent="planner")
    notification = notify(recipient=dave, kind="mention", title="hi")
    return run.pk, notification.pk, factories.access_token(factories.make_user("stranger"))


async def test_socket_messages_naming_someone_elses_object_answer_as_for_a_missing_one(live):
    """The body fields that name an object on the sockets without a trip: `agent.cancel`'s
    `run_id`, `notification.read`'s `ids`."""
    run_id, notification_id, token = await _someone_elses()
    calls = {
        "/ws/agent-status/": (
            lambda target: {"type": "agent.cancel", "run_id": target},
            run_id,
            "run_id",
        ),
        "/ws/notifications/": (
            lambda target: {"type": "notification.read", "ids": [target]},
            notification_id,
            "ids",
        ),
    }
    for path, (message, existing, name) in calls.items():
        ws, _ = await connect(live.ws_url, path, token)
        answers = []
        for n, target in enumerate((existing, MISSING)):
            await send_json(ws, {**message(target), "id": f"r-{n}"})
            answer = await recv_until(ws, lambda m, n=n: m.get("request_id") == f"r-{n}")
            answers.append(_seen({**answer, "request_id": None}, target, name))
        await ws.close()
        assert answers[0] == answers[1], path
        assert answers[0]["type"] in ("error", "ack"), path
