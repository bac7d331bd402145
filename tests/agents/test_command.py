"""`manage.py agent_status`: report from a script, see the run as JSON."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from agents import services
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    return services.agent_run_create(owner=factories.make_user("alice"), agent="planner")


def agent_status(*args: str) -> dict:
    out = io.StringIO()
    call_command("agent_status", *args, stdout=out)
    return json.loads(out.getvalue())


def test_reports_state_progress_step_and_message_and_prints_the_run(run):
    body = agent_status(
        str(run.pk), "--state", "running", "--progress", "30", "--step", "hotels", "--message", "ok"
    )
    assert (body["id"], body["state"], body["progress"], body["step"], body["message"]) == (
        run.pk, "running", 30, "hotels", "ok",
    )  # fmt: skip
    assert body["version"] == 2 and body["owner"]["username"] == "alice"


def test_without_options_it_only_prints(run):
    body = agent_status(str(run.pk))
    assert (body["state"], body["version"]) == ("queued", 1)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--progress", "150"], "from 0 to 100"),
        (["--progress", "half"], "not a whole number"),
        (["--state", "running", "--step", "s" * 201], "at most 200"),
    ],
)
def test_bad_input_is_a_clear_command_error(run, args, says):
    with pytest.raises(CommandError, match=says):
        call_command("agent_status", str(run.pk), *args, stdout=io.StringIO())


def test_an_unknown_run_or_state_is_refused(run):
    with pytest.raises(CommandError, match="No such agent run"):
        call_command("agent_status", str(run.pk + 1000), "--progress", "5")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("agent_status", str(run.pk), "--state", "paused")


def test_a_finished_run_is_refused_with_its_state(run):
    agent_status(str(run.pk), "--state", "failed", "--message", "no flights")
    with pytest.raises(CommandError, match="is failed"):
        call_command("agent_status", str(run.pk), "--progress", "5")
