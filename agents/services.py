"""Writes for agent runs: create, report status, cancel. Each change takes the run's row lock,
bumps its `version` and is fanned out to the owner and the run's trip only after commit."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

import protocol
from agents.models import AGENT_MAX_LENGTH, STEP_MAX_LENGTH, TERMINAL_STATES, AgentRun
from agents.payloads import run_payload
from collaboration.errors import InvalidChange, NotAllowed, NotFound
from collaboration.models import Notification, TripMember
from collaboration.services.notifications import notify
from events.broadcast import broadcast_on_commit
from events.groups import agents_trip_group, agents_user_group

State = AgentRun.State
MESSAGE_MAX_LENGTH = 10_000  # a status line or an error summary, not a transcript


def _publish(run: AgentRun) -> None:
    """Fan the run's new state out after commit, serialized once for every recipient."""
    payload = run_payload(run)
    event = {
        "type": "agent.run",
        "run": payload,
        "text": protocol.encode(protocol.server_message("agent.run", run=payload)),
    }
    broadcast_on_commit(agents_user_group(run.owner_id), event)
    if run.trip_id is not None:
        broadcast_on_commit(agents_trip_group(run.trip_id), event)


def _lock_run(run_id: int) -> AgentRun:
    try:
        return AgentRun.objects.select_for_update().select_related("owner").get(pk=run_id)
    except AgentRun.DoesNotExist:
        raise NotFound("No such agent run.", run_id=run_id) from None


def _text(value: Any, *, field: str, max_length: int, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidChange(f"`{field}` must be a string.", field=field)
    if required and not value.strip():
        raise InvalidChange(f"`{field}` must not be empty.", field=field)
    if len(value) > max_length:
        raise InvalidChange(
            f"`{field}` is {len(value)} characters; at most {max_length} are allowed.",
            field=field,
        )
    return value.strip() if required else value


@transaction.atomic
def agent_run_create(*, owner: User, agent: str, trip_id: int | None = None) -> AgentRun:
    """A queued run for `owner`, optionally for one of the owner's trips."""
    agent = _text(agent, field="agent", max_length=AGENT_MAX_LENGTH, required=True)
    if trip_id is not None and not TripMember.objects.filter(trip_id=trip_id, user=owner).exists():
        # The same answer for "no such trip" and "not a member": ids are not probed.
        raise NotFound("You are not a member of this trip.", trip_id=trip_id)
    run = AgentRun.objects.create(owner=owner, agent=agent, trip_id=trip_id)
    _publish(run)
    return run


@transaction.atomic
def agent_run_update(
    *,
    run_id: int,
    state: str | None = None,
    progress: int | None = None,
    step: str | None = None,
    message: str | None = None,
) -> AgentRun:
    """Record what a run's agent reports. A finished run (succeeded, failed, cancelled) never
    changes again; a run does not go back to `queued`."""
    if state is None and progress is None and step is None and message is None:
        raise InvalidChange("Name at least one of state, progress, step, message.", field="state")
    if state is not None and state not in State.values:
        raise InvalidChange(
            f"`state` must be one of {', '.join(State.values)}.", field="state", value=state
        )
    if progress is not None and (
        isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100
    ):
        raise InvalidChange("`progress` must be a whole number from 0 to 100.", field="progress")
    if step is not None:
        step = _text(step, field="step", max_length=STEP_MAX_LENGTH)
    if message is not None:
        message = _text(message, field="message", max_length=MESSAGE_MAX_LENGTH)

    run = _lock_run(run_id)
    if run.is_finished:
        raise InvalidChange(
            f"Agent run {run.pk} is {run.state}: a finished run does not change.",
            field="state",
            state=run.state,
        )
    if state == State.QUEUED and run.state != State.QUEUED:
        raise InvalidChange(
            f"Agent run {run.pk} is {run.state}: it cannot go back to queued.",
            field="state",
            state=run.state,
        )
    now = timezone.now()
    if state is not None:
        run.state = state
        if state in (State.RUNNING, State.SUCCEEDED, State.FAILED) and run.started_at is None:
            run.started_at = now  # a run cancelled while queued never started
        if state in TERMINAL_STATES:
            run.finished_at = now
            if state == State.SUCCEEDED and progress is None:
                progress = 100
    if progress is not None:
        run.progress = progress
    if step is not None:
        run.step = step
    if message is not None:
        run.message = message
    run.version += 1
    run.save()
    _publish(run)
    if run.state in (State.SUCCEEDED, State.FAILED):
        _notify_finished(run)
    return run


@transaction.atomic
def agent_run_cancel(*, run_id: int, actor: User) -> AgentRun:
    """The owner stops a run that has not finished. Others who can see it (trip members) are
    refused; to anyone else it does not exist."""
    run = _lock_run(run_id)
    if run.owner_id != actor.pk:
        member = (
            run.trip_id is not None
            and TripMember.objects.filter(trip_id=run.trip_id, user=actor).exists()
        )
        if not member:
            raise NotFound("No such agent run.", run_id=run_id)
        raise NotAllowed("Only the run's owner can cancel it.", run_id=run_id)
    if run.is_finished:
        raise InvalidChange(
            f"Agent run {run.pk} is already {run.state}.", field="run_id", state=run.state
        )
    now = timezone.now()
    run.state = State.CANCELLED
    run.finished_at = now
    run.version += 1
    run.save()
    _publish(run)
    return run


def _notify_finished(run: AgentRun) -> None:
    """Called inside the transaction once a run has succeeded or failed: the owner hears of it
    on every socket (and in the unread list) after commit."""
    outcome = "finished" if run.state == State.SUCCEEDED else "failed"
    notify(
        recipient=run.owner,
        kind=Notification.Kind.AGENT_RUN_FINISHED,
        title=f"{run.agent} {outcome}",
        body=run.message[:500],
        link=f"/trips/{run.trip_id}/edit" if run.trip_id else "",
        data={"run_id": run.pk, "state": run.state, "trip_id": run.trip_id},
    )
