"""schemathesis against the OpenAPI schema a real daphne process serves at /api/schema/.

Every operation gets generated requests, valid and invalid ones (schemathesis's positive and
negative modes), with NUL and lone surrogates put into their strings, as a staff user who owns
some trips, with path parameters that often name rows that exist. No answer may be a 5xx; an
error is the seed's envelope; a response documented with a schema fits it.

Bounded and reproducible: REST_FUZZ_EXAMPLES requests per operation and mode (derandomized, no
shrinking, no Hypothesis database; Hypothesis's other files go to a temporary directory).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

import protocol
from agents import services as agent_services
from collaboration.models import Conflict, Notification
from collaboration.services import chat as chat_services
from collaboration.services import trips as trip_services
from metrics.models import ConnectionSession
from tests import factories
from tests.conftest import DaphneServer

# Requests per operation and mode: the suite's 5 (about 250 requests) reach every operation in
# both modes; `make fuzz` sends 50 each (about 2,500), and REST_FUZZ_EXAMPLES=500 make fuzz hunts
# longer (docs/checks.md).
EXAMPLES = int(os.environ.get("REST_FUZZ_EXAMPLES", "5"))

# What PostgreSQL cannot store (NUL) and UTF-8 cannot encode (lone surrogates). JSON carries both
# ("\u0000", "\ud800") and drf-spectacular's schemas forbid neither. schemathesis checks each case
# against the schema in Rust, which cannot hold a lone surrogate: a case holds a private-use
# stand-in, and the JSON sent holds the surrogate (`_json_body`); a failure's curl shows the
# stand-in (U+E000 for \ud800, U+E001 for \udfff, U+E002 for \ud83d).
NUL = "\x00"
SURROGATES = {"\ue000": "\ud800", "\ue001": "\udfff", "\ue002": "\ud83d"}

# An envelope for every 4xx, except the documented bodies of PATCH's 409 (the trip and its
# conflicts) and the event log's 410 (resync_required).
OWN_BODIES = (409, 410)


@dataclass
class World:
    """The bearer's token, and ids that exist, by path parameter name."""

    token: str
    ids: dict[str, list[Any]]


@pytest.fixture(scope="module")
def fuzz_server(module_daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """A process of its own: thousands of requests from one user, with the REST limits lifted."""
    return module_daphne_factory(
        "rest-fuzz", REST_RATE_USER="1000000/min", REST_RATE_IP="1000000/min"
    )


@pytest.fixture
def world(transactional_db: None, fuzz_server: DaphneServer) -> World:
    """Alice (staff, for /api/metrics/ and run status) owns two trips, with an open conflict, a
    chat message, notifications and an agent run; dave's trip is one she is not a member of; a
    socket of hers has its metrics row."""
    alice, bob, carol, trip = factories.make_crew()
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    second = factories.make_trip(alice, {bob: "viewer"})
    dave = factories.make_user("dave")
    strangers = factories.make_trip(dave)
    for actor, key, budget in ((bob, "b", 10), (alice, "a", 20)):  # alice's edit is stale
        trip_services.trip_update_fields(
            trip_id=trip.pk, actor=actor, idempotency_key=key, changes={"budget": budget},
            base_version=1,
        )  # fmt: skip
    chat_services.chat_post(trip_id=trip.pk, author=bob, text="hi @alice")
    run = agent_services.agent_run_create(owner=alice, agent="planner", trip_id=trip.pk)
    now = timezone.now()
    session = ConnectionSession.objects.create(
        connection_id=protocol.new_id(), user=alice, username="alice", connection_type="chat",
        process="fuzz:1", connected_at=now, last_activity=now, last_seen=now,
    )  # fmt: skip
    return World(
        token=factories.access_token(alice, lifetime_seconds=3600),
        ids={
            "trip_id": [trip.pk, second.pk, strangers.pk],
            "user_id": [alice.pk, bob.pk, carol.pk, dave.pk],
            "conflict_id": list(Conflict.objects.values_list("pk", flat=True)),
            "notification_id": list(
                Notification.objects.filter(recipient=alice).values_list("pk", flat=True)
            ),
            "run_id": [run.pk],
            "connection_id": [session.connection_id],
        },
    )


@pytest.fixture
def api_schema(world: World, fuzz_server: DaphneServer) -> schemathesis.BaseSchema:
    """The schema as the service serves it, with this module's hooks."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.http_url}/api/schema/?format=json")

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        known = {name: st.sampled_from(world.ids[name]) for name in path_parameters or {}}
        if not known:
            return st.just(path_parameters)
        return st.one_of(  # half the time, rows that exist
            st.just(path_parameters),
            st.fixed_dictionaries(known).map(lambda ids: {**path_parameters, **ids}),
        )

    @schema.hook
    def flatmap_case(context: Any, case: Any) -> Any:
        return _with_hostile_text(case)

    return schema


@pytest.fixture
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis caches what it reads from our sources under .hypothesis/: not in the tree."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


@schemathesis.check
def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx with a JSON body is the seed's error envelope."""
    if not 400 <= response.status_code < 500 or response.status_code in OWN_BODIES:
        return None
    if "json" not in response.headers.get("content-type", [""])[0]:
        return None  # Django's own 404 page for a path no route matches (see the report)
    body = json.loads(response.content)
    protocol.check_server_message(body)
    assert body["type"] == "error", body
    return None


CHECKS = [not_a_server_error, error_envelope, response_schema_conformance, content_type_conformance]


@pytest.mark.timeout(900)
def test_no_generated_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, world: World, hypothesis_home: None
) -> None:
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded when failing
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                case.call_and_validate(headers=_bearer(world), checks=CHECKS, **_json_body(case))

            try:
                fuzz()
            except (Exception, BaseExceptionGroup) as error:  # every operation is tried
                failures.extend(
                    f"{operation.label} ({mode.value}): {leaf}" for leaf in _leaves(error)
                )
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("depth", [900, 1_000, 100_000])
def test_deeply_nested_json_gets_no_server_error_from_any_operation(
    api_schema: schemathesis.BaseSchema, world: World, depth: int
) -> None:
    """Around and far past Python's recursion limit, arrays and objects, on every operation
    that takes JSON: a 400 in the envelope, or whatever the operation answers, never a 5xx."""
    bodies = [
        "[" * depth + "]" * depth,
        '{"a":' * depth + "1" + "}" * depth,
        '{"name": ' + "[" * depth + "]" * depth + "}",
    ]
    failures: list[str] = []
    tried = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if not _takes_json(operation):
            continue
        path_parameters = {name: ids[0] for name, ids in world.ids.items()}
        for text in bodies:
            case = operation.Case(
                path_parameters={
                    name: value
                    for name, value in path_parameters.items()
                    if "{" + name + "}" in operation.path
                },
                body={},
                media_type="application/json",
            )
            tried += 1
            try:
                case.call_and_validate(headers=_bearer(world), checks=CHECKS, data=text.encode())
            except (Exception, BaseExceptionGroup) as error:
                failures.extend(f"{operation.label}: {leaf}" for leaf in _leaves(error))
    assert tried >= 10 * len(bodies)  # every operation with a JSON body was tried
    assert not failures, "\n\n".join(failures)


def _bearer(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token}"}


def _takes_json(operation: Any) -> bool:
    body = operation.definition.raw.get("requestBody", {})
    return "application/json" in body.get("content", {})


@st.composite
def _hostile(draw: st.DrawFn, value: Any, characters: tuple[str, ...]) -> Any:
    """`value` with one of `characters` put into some of its strings: half the values, an eighth
    of the keys (an unknown field is refused before anything else is looked at)."""
    if isinstance(value, dict):
        return {
            draw(_hostile_text(key, characters, one_in=8)): draw(_hostile(item, characters))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [draw(_hostile(item, characters)) for item in value]
    if isinstance(value, str):
        return draw(_hostile_text(value, characters, one_in=2))
    return value


@st.composite
def _hostile_text(draw: st.DrawFn, text: Any, characters: tuple[str, ...], one_in: int) -> Any:
    if not isinstance(text, str) or draw(st.integers(1, one_in)) != 1:
        return text
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(characters)) + text[at:]


def _with_hostile_text(case: Any) -> Any:
    """The case with NUL in some strings of its body and query, and lone surrogates too in a JSON
    body: only JSON can carry them ("\\ud800"); a form or a URL is UTF-8 on the wire."""
    body_characters = (NUL, *SURROGATES) if _is_json(case) else (NUL,)

    def apply(parts: tuple[Any, Any]) -> Any:
        case.body, case.query = parts
        return case

    return st.tuples(_hostile(case.body, body_characters), _hostile(case.query, (NUL,))).map(apply)


def _is_json(case: Any) -> bool:
    return bool(case.media_type) and "json" in case.media_type


def _with_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "".join(SURROGATES.get(char, char) for char in value)
    if isinstance(value, dict):
        return {_with_surrogates(key): _with_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_surrogates(item) for item in value]
    return value


def _json_body(case: Any) -> dict[str, bytes]:
    """The JSON body to send instead of the case's, when it holds stand-ins: each one a lone
    surrogate, escaped ("\\ud800") as json.dumps writes it."""
    if not _is_json(case) or isinstance(case.body, NotSet):
        return {}
    body = _with_surrogates(case.body)
    if body == case.body:
        return {}  # nothing to change: schemathesis serializes it (bytes included)
    return {"data": json.dumps(body).encode()}


def _leaves(error: BaseException) -> Iterator[str]:
    if isinstance(error, FailureGroup):  # schemathesis's: what failed and a curl to reproduce it
        yield str(error)
        return
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
        return
    # A fault of this test or of schemathesis, not of the service: where it was raised.
    yield "".join(traceback.format_exception(error)[-6:])
