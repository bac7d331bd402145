"""Agent run services: transitions, bounds, who may cancel, what is broadcast and to whom."""

from __future__ import annotations

import json

import pytest

from agents import selectors, services
from agents.models import AgentRun
from collaboration.errors import InvalidChange, NotAllowed, NotFound
from collaboration.models import Notification
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    return factories.make_crew()


def published(callbacks) -> list[tuple[str, dict]]:
    """(group, event) for every broadcast the captured commit callbacks would have sent."""
    return [callback.args for callback in callbacks]


def test_create_queues_a_run_and_tells_the_owner_and_the_trip(
    crew, django_capture_on_commit_callbacks
):
    alice, *_, trip = crew
    with django_capture_on_commit_callbacks() as callbacks:
        run = services.agent_run_create(owner=alice, agent=" planner ", trip_id=trip.pk)
    assert (run.state, run.progress, run.version, run.agent) == ("queued", 0, 1, "planner")
    assert run.started_at is None and run.finished_at is None
    groups = [group for group, _ in published(callbacks)]
    assert groups == [f"agents-user-{alice.pk}", f"agents-trip-{trip.pk}"]
    event = published(callbacks)[0][1]
    assert event["type"] == "agent.run" and event["run"]["id"] == run.pk
    text = json.loads(event["text"])
    assert text["type"] == "agent.run" and text["run"] == event["run"]
    assert text["run"]["owner"] == {"id": alice.pk, "username": "alice"}


def test_a_run_without_a_trip_goes_to_the_owner_only(crew, django_capture_on_commit_callbacks):
    alice, *_ = crew
    with django_capture_on_commit_callbacks() as callbacks:
        services.agent_run_create(owner=alice, agent="planner")
    assert [group for group, _ in published(callbacks)] == [f"agents-user-{alice.pk}"]


def test_the_trip_must_be_one_the_owner_is_a_member_of(crew):
    alice, *_, trip = crew
    stranger = factories.make_user("stranger")
    with pytest.raises(NotFound):
        services.agent_run_create(owner=stranger, agent="planner", trip_id=trip.pk)
    with pytest.raises(NotFound):
        services.agent_run_create(owner=alice, agent="planner", trip_id=trip.pk + 1000)
    assert not AgentRun.objects.exists()


@pytest.mark.parametrize("agent", ["", "   ", "x" * 101, 7])
def test_agent_name_is_required_and_bounded(crew, agent):
    alice, *_ = crew
    with pytest.raises(InvalidChange) as refused:
        services.agent_run_create(owner=alice, agent=agent)
    assert refused.value.field == "agent"


def test_running_then_succeeded_sets_times_progress_and_versions(crew):
    alice, *_ = crew
    run = services.agent_run_create(owner=alice, agent="planner")
    run = services.agent_run_update(run_id=run.pk, state="running", progress=10, step="search")
    assert (run.state, run.progress, run.step, run.version) == ("running", 10, "search", 2)
    assert run.started_at is not None and run.finished_at is None
    started = run.started_at
    run = services.agent_run_update(run_id=run.pk, progress=60, message="3 of 5 flights")
    assert (run.progress, run.message, run.step, run.version) == (60, "3 of 5 flights", "search", 3)
    run = services.agent_run_update(run_id=run.pk, state="succeeded")
    assert (run.state, run.progress, run.version) == ("succeeded", 100, 4)
    assert run.started_at == started and run.finished_at is not None


@pytest.mark.parametrize("final", ["succeeded", "failed", "cancelled"])
def test_a_finished_run_never_changes_again(crew, final):
    alice, *_ = crew
    run = services.agent_run_create(owner=alice, agent="planner")
    services.agent_run_update(run_id=run.pk, state=final)
    for change in ({"state": "running"}, {"progress": 5}, {"message": "late"}, {"state": final}):
        with pytest.raises(InvalidChange) as refused:
            services.agent_run_update(run_id=run.pk, **change)
        assert refused.value.field == "state" and refused.value.details["state"] == final
    assert AgentRun.objects.get(pk=run.pk).version == 2


def test_a_started_run_does_not_go_back_to_queued(crew):
    alice, *_ = crew
    run = services.agent_run_create(owner=alice, agent="planner")
    services.agent_run_update(run_id=run.pk, state="queued", step="waiting for a worker")
    services.agent_run_update(run_id=run.pk, state="running")
    with pytest.raises(InvalidChange):
        services.agent_run_update(run_id=run.pk, state="queued")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"progress": -1}, "progress"),
        ({"progress": 101}, "progress"),
        ({"progress": True}, "progress"),
        ({"progress": 5.5}, "progress"),
        ({"state": "paused"}, "state"),
        ({"step": "s" * 201}, "step"),
        ({"message": "m" * 10_001}, "message"),
        ({}, "state"),
    ],
)
def test_bad_updates_are_refused_naming_the_field_and_change_nothing(crew, change, field):
    alice, *_ = crew
    run = services.agent_run_create(owner=alice, agent="planner")
    with pytest.raises(InvalidChange) as refused:
        services.agent_run_update(run_id=run.pk, **change)
    assert refused.value.field == field
    run.refresh_from_db()
    assert (run.state, run.progress, run.version) == ("queued", 0, 1)


def test_progress_bounds_are_inclusive(crew):
    alice, *_ = crew
    run = services.agent_run_create(owner=alice, agent="planner")
    assert services.agent_run_update(run_id=run.pk, progress=0).progress == 0
    assert services.agent_run_update(run_id=run.pk, progress=100).progress == 100


def test_updating_an_unknown_run_is_not_found():
    with pytest.raises(NotFound):
        services.agent_run_update(run_id=12345, state="running")


def test_owner_cancels_and_everyone_who_sees_it_hears(crew, django_capture_on_commit_callbacks):
    alice, *_, trip = crew
    run = services.agent_run_create(owner=alice, agent="planner", trip_id=trip.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        cancelled = services.agent_run_cancel(run_id=run.pk, actor=alice)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    assert cancelled.started_at is None  # cancelled while queued: it never started
    sent = published(callbacks)
    assert [group for group, _ in sent] == [f"agents-user-{alice.pk}", f"agents-trip-{trip.pk}"]
    assert sent[0][1]["run"]["state"] == "cancelled" and sent[0][1]["run"]["version"] == 2
    with pytest.raises(InvalidChange):
        services.agent_run_cancel(run_id=run.pk, actor=alice)  # already finished


def test_a_trip_member_who_is_not_the_owner_cannot_cancel_and_a_stranger_cannot_see(crew):
    alice, bob, _, trip = crew
    run = services.agent_run_create(owner=alice, agent="planner", trip_id=trip.pk)
    with pytest.raises(NotAllowed):
        services.agent_run_cancel(run_id=run.pk, actor=bob)
    stranger = factories.make_user("stranger")
    with pytest.raises(NotFound):
        services.agent_run_cancel(run_id=run.pk, actor=stranger)
    assert AgentRun.objects.get(pk=run.pk).state == "queued"


def test_a_finished_run_notifies_its_owner_only_on_success_and_failure(crew):
    alice, bob, _, trip = crew
    for final in ("succeeded", "failed"):
        run = services.agent_run_create(owner=alice, agent="planner", trip_id=trip.pk)
        services.agent_run_update(run_id=run.pk, state="running")
        services.agent_run_update(run_id=run.pk, state=final, message=f"it {final}")
    run = services.agent_run_create(owner=alice, agent="planner")
    services.agent_run_cancel(run_id=run.pk, actor=alice)
    notes = Notification.objects.filter(kind="agent_run_finished").order_by("id")
    assert [(n.recipient, n.data["state"], n.body) for n in notes] == [
        (alice, "succeeded", "it succeeded"),
        (alice, "failed", "it failed"),
    ]
    assert notes[0].title == "planner finished" and notes[1].title == "planner failed"
    assert notes[0].link == f"/trips/{trip.pk}/edit"
    assert not Notification.objects.filter(recipient=bob, kind="agent_run_finished").exists()


def test_selectors_show_own_and_trip_runs_only(crew):
    alice, bob, carol, trip = crew
    stranger = factories.make_user("stranger")
    on_trip = services.agent_run_create(owner=alice, agent="planner", trip_id=trip.pk)
    private = services.agent_run_create(owner=alice, agent="budget")
    bobs = services.agent_run_create(owner=bob, agent="packing")
    theirs = services.agent_run_create(owner=stranger, agent="other")
    done = services.agent_run_create(owner=bob, agent="done", trip_id=trip.pk)
    services.agent_run_update(run_id=done.pk, state="succeeded")

    def ids(runs):
        return {run.pk for run in runs}

    assert ids(selectors.active_runs_for(user=alice)) == {on_trip.pk, private.pk}
    assert ids(selectors.active_runs_for(user=bob)) == {on_trip.pk, bobs.pk}
    assert ids(selectors.active_runs_for(user=carol)) == {on_trip.pk}
    assert ids(selectors.active_runs_for(user=stranger)) == {theirs.pk}
    assert ids(selectors.runs_for(user=carol)) == {on_trip.pk, done.pk}
    assert ids(selectors.runs_for(user=carol, state="succeeded")) == {done.pk}
    assert selectors.run_for_viewer(run_id=on_trip.pk, user=carol) == on_trip
    with pytest.raises(NotFound):
        selectors.run_for_viewer(run_id=private.pk, user=carol)
