"""Reads for agent runs: a user sees the runs they own and the runs attached to their trips."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from agents.models import TERMINAL_STATES, AgentRun
from collaboration.errors import NotFound
from collaboration.models import TripMember

# REST lists the newest runs only: a user's history grows without bound.
RUNS_LIST_LIMIT = 100


def visible_runs(*, user: User) -> QuerySet[AgentRun]:
    member_of = TripMember.objects.filter(user=user).values("trip_id")
    return AgentRun.objects.filter(Q(owner=user) | Q(trip_id__in=member_of)).select_related("owner")


def active_runs_for(*, user: User) -> list[AgentRun]:
    """The runs that have not finished, oldest first: what a socket gets at connect."""
    return list(
        visible_runs(user=user).exclude(state__in=TERMINAL_STATES).order_by("created_at", "id")
    )


def runs_for(*, user: User, state: str | None = None) -> list[AgentRun]:
    """The user's visible runs, newest first, at most RUNS_LIST_LIMIT."""
    runs = visible_runs(user=user)
    if state is not None:
        runs = runs.filter(state=state)
    return list(runs.order_by("-created_at", "-id")[:RUNS_LIST_LIMIT])


def run_for_viewer(*, run_id: int, user: User) -> AgentRun:
    run = visible_runs(user=user).filter(pk=run_id).first()
    if run is None:
        raise NotFound("No such agent run.", run_id=run_id)
    return run


def member_trip_ids(*, user: User) -> list[int]:
    return list(TripMember.objects.filter(user=user).values_list("trip_id", flat=True))


def is_trip_member(*, trip_id: int, user_id: int) -> bool:
    return TripMember.objects.filter(trip_id=trip_id, user_id=user_id).exists()


def run_by_id(*, run_id: int) -> AgentRun:
    """Any run, for the deployment's own tools (the status endpoint, the management command)."""
    run = AgentRun.objects.select_related("owner").filter(pk=run_id).first()
    if run is None:
        raise NotFound("No such agent run.", run_id=run_id)
    return run
