"""Agent runs over REST: who sees what, and who may report a run's status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from agents import services
from agents.models import AgentRun
from tests import factories

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SERVICE_TOKEN = "s3rvice-token-for-tests-only-0123456789"


@pytest.fixture
def crew():
    return factories.make_crew()


@pytest.fixture
def run(crew):
    alice, *_, trip = crew
    return services.agent_run_create(owner=alice, agent="planner", trip_id=trip.pk)


@pytest.fixture
def service_token(settings):
    settings.AGENT_SERVICE_TOKEN = SERVICE_TOKEN
    return SERVICE_TOKEN


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def with_header(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def status_url(run_id: int) -> str:
    return f"/api/agents/runs/{run_id}/status/"


def test_service_token_reports_status(run, service_token):
    response = with_header(f"Service {service_token}").post(
        status_url(run.pk), {"state": "running", "progress": 40, "step": "flights"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["progress"], body["step"], body["version"]) == (
        "running", 40, "flights", 2,
    )  # fmt: skip
    assert AgentRun.objects.get(pk=run.pk).state == "running"


@pytest.mark.parametrize("header", ["Service wrong-token", "Service", "service a b"])
def test_a_wrong_service_token_gets_401_in_the_envelope(run, service_token, header):
    response = with_header(header).post(status_url(run.pk), {"progress": 5}, format="json")
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error" and body["error"]["code"] == "AUTHENTICATION_FAILED"
    assert body["error"]["details"]["token_type"] == "service"
    assert body["error"]["details"]["reason"] in ("invalid_service_token", "malformed")
    assert AgentRun.objects.get(pk=run.pk).progress == 0


def test_service_tokens_are_refused_while_the_setting_is_empty(run, settings):
    settings.AGENT_SERVICE_TOKEN = ""
    response = with_header("Service ").post(status_url(run.pk), {"progress": 5}, format="json")
    assert response.status_code == 401
    response = with_header("Service anything").post(status_url(run.pk), {"progress": 5})
    assert response.status_code == 401
    assert response.json()["error"]["details"]["reason"] == "service_tokens_disabled"


def test_non_staff_jwt_is_forbidden_and_staff_jwt_may_report(run, crew, service_token):
    alice, *_ = crew  # the run's own owner is not an agent: users do not report status
    bearer = with_header(f"Bearer {factories.access_token(alice)}")
    forbidden = bearer.post(status_url(run.pk), {"progress": 5}, format="json")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    staff = factories.make_user("ops", is_staff=True)
    allowed = with_header(f"Bearer {factories.access_token(staff)}").post(
        status_url(run.pk), {"progress": 5}, format="json"
    )
    assert allowed.status_code == 200 and allowed.json()["progress"] == 5


def test_no_credentials_is_401(run):
    response = APIClient().post(status_url(run.pk), {"progress": 5}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"progress": 101}, "progress"),
        ({"progress": "lots"}, "progress"),
        ({"state": "paused"}, "state"),
        ({"progres": 5}, "progres"),
    ],
)
def test_bad_status_bodies_get_400_naming_the_field(run, service_token, body, field):
    response = with_header(f"Service {service_token}").post(status_url(run.pk), body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_MESSAGE_FORMAT" and field in error["details"]["fields"]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/agents/runs/", {"agent": "planner", "trip\ud800_id": 1}),
        ("status", {"state": "running", "st\udfffep": "flights"}),
        ("status", {"state": "\ud83drunning"}),
    ],
)
def test_a_refusal_that_echoes_a_lone_surrogate_is_a_400_not_a_500(run, crew, url, body):
    alice, *_ = crew
    alice.is_staff = True  # may report status
    alice.save()
    # As a client sends it: JSON's "\ud800" escape parses into a lone surrogate.
    response = as_user(alice).post(
        status_url(run.pk) if url == "status" else url,
        json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "INVALID_MESSAGE_FORMAT"
    assert "\ufffd" in json.dumps(error["details"]["fields"], ensure_ascii=False)
    assert AgentRun.objects.get(pk=run.pk).state == "queued"


def test_a_finished_run_refuses_status_and_an_unknown_run_is_404(run, service_token):
    client = with_header(f"Service {service_token}")
    assert client.post(status_url(run.pk), {"state": "failed"}, format="json").status_code == 200
    late = client.post(status_url(run.pk), {"progress": 50}, format="json")
    assert late.status_code == 400 and "state" in late.json()["error"]["details"]["fields"]
    missing = client.post(status_url(run.pk + 1000), {"progress": 50}, format="json")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "AUTHORIZATION_FAILED"


def test_list_shows_own_and_trip_runs_only(run, crew):
    _, bob, carol, _ = crew
    stranger = factories.make_user("stranger")
    mine = services.agent_run_create(owner=bob, agent="packing")
    hidden = services.agent_run_create(owner=stranger, agent="other")
    services.agent_run_update(run_id=mine.pk, state="succeeded")

    def listed(user, query=""):
        response = as_user(user).get(f"/api/agents/runs/{query}")
        assert response.status_code == 200
        return [item["id"] for item in response.json()]

    assert listed(bob) == [mine.pk, run.pk]  # newest first
    assert listed(carol) == [run.pk]
    assert listed(stranger) == [hidden.pk]
    assert listed(bob, "?state=succeeded") == [mine.pk]
    assert listed(bob, "?state=queued") == [run.pk]
    bad = as_user(bob).get("/api/agents/runs/?state=paused")
    assert bad.status_code == 400 and "state" in bad.json()["error"]["details"]["fields"]


def test_create_makes_me_owner_on_my_trip_only(crew):
    alice, *_, trip = crew
    created = as_user(alice).post(
        "/api/agents/runs/", {"agent": "planner", "trip_id": trip.pk}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["owner"]["username"] == "alice" and body["trip_id"] == trip.pk
    assert body["state"] == "queued"
    stranger = factories.make_user("stranger")
    refused = as_user(stranger).post(
        "/api/agents/runs/", {"agent": "planner", "trip_id": trip.pk}, format="json"
    )
    assert refused.status_code == 404
    unknown = as_user(alice).post("/api/agents/runs/", {"agent": "x", "owner": 1}, format="json")
    assert unknown.status_code == 400
    blank = as_user(alice).post("/api/agents/runs/", {"agent": " "}, format="json")
    assert blank.status_code == 400


def test_detail_and_cancel_follow_visibility_and_ownership(run, crew):
    alice, bob, _, _ = crew
    stranger = factories.make_user("stranger")
    assert as_user(bob).get(f"/api/agents/runs/{run.pk}/").json()["id"] == run.pk
    assert as_user(stranger).get(f"/api/agents/runs/{run.pk}/").status_code == 404
    cancel = f"/api/agents/runs/{run.pk}/cancel/"
    assert as_user(stranger).post(cancel).status_code == 404
    refused = as_user(bob).post(cancel)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    cancelled = as_user(alice).post(cancel)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert as_user(alice).post(cancel).status_code == 400


def test_a_short_service_token_stops_start_up():
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "JWT_", "REDIS", "DATABASE"))
    }
    env.update(DJANGO_SETTINGS_MODULE="tripsage.settings.base", AGENT_SERVICE_TOKEN="short")
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AGENT_SERVICE_TOKEN is set but only 5 characters long" in result.stderr
