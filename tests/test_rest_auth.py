"""REST auth: token endpoints, JWT hardening, the error envelope, the OpenAPI schema."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import get_hasher
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def alice():
    return factories.make_user("alice")


def test_token_pair_for_valid_credentials(client, alice):
    response = client.post(
        "/api/auth/token/", {"username": "alice", "password": factories.PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    me = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert me.json()["username"] == "alice"


def test_wrong_password_gets_authentication_failed_envelope(client, alice):
    response = client.post(
        "/api/auth/token/", {"username": "alice", "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["code"] == "AUTHENTICATION_FAILED"
    assert {"id", "timestamp"} <= set(body)


def test_login_answers_alike_for_an_unknown_user_a_wrong_password_and_an_inactive_user(
    client, alice, monkeypatch
):
    """No enumeration (docs/decisions.md): the same answer, and the same work (the password
    hasher runs once in each case: Django's ModelBackend hashes for an unknown user too, and
    simplejwt's TokenObtainPairView goes through it), so timing tells no more than the body."""
    factories.make_user("gone", is_active=False)
    hasher = type(get_hasher())
    runs = []
    encode = hasher.encode
    monkeypatch.setattr(
        hasher, "encode", lambda self, *a, **k: runs.append(1) or encode(self, *a, **k)
    )
    answers = {}
    for username, password in (
        ("alice", "nope"),
        ("nobody-here", "nope"),
        ("gone", factories.PASSWORD),
    ):
        runs.clear()
        response = client.post(
            "/api/auth/token/", {"username": username, "password": password}, format="json"
        )
        body = {k: v for k, v in response.json().items() if k not in ("id", "timestamp")}
        answers[username] = (response.status_code, body, len(runs))
    assert answers["alice"] == answers["nobody-here"] == answers["gone"]
    assert answers["alice"][0] == 401 and answers["alice"][2] == 1


def test_missing_fields_get_invalid_message_format_naming_them(client):
    response = client.post("/api/auth/token/", {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert set(body["error"]["details"]["fields"]) == {"username", "password"}


def test_refresh_and_verify(client, alice):
    pair = client.post(
        "/api/auth/token/", {"username": "alice", "password": factories.PASSWORD}, format="json"
    ).json()
    refreshed = client.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "access" in refreshed.json()
    assert (
        client.post("/api/auth/token/verify/", {"token": pair["access"]}, format="json").status_code
        == 200
    )
    bad = client.post("/api/auth/token/verify/", {"token": "garbage"}, format="json")
    assert bad.status_code == 401


@pytest.mark.parametrize(
    "make_token",
    [
        lambda user: factories.refresh_token(user),
        lambda user: factories.unsigned_none_token(factories.claims_for(user)),
        lambda user: factories.hs_confused_token(factories.claims_for(user)),
        lambda user: factories.signed(factories.claims_for(user, exp=None)),
        lambda user: factories.signed(factories.claims_for(user, exp=1_600_000_000)),
    ],
    ids=["refresh-as-access", "alg-none", "hs-rs-confusion", "no-exp", "expired"],
)
def test_rest_refuses_bad_tokens(client, alice, make_token):
    response = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {make_token(alice)}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"


def test_rest_refuses_inactive_user(client, alice):
    token = factories.access_token(alice)
    alice.is_active = False
    alice.save()
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_openapi_schema_lists_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/auth/token/",
        "/api/auth/token/refresh/",
        "/api/auth/token/verify/",
        "/api/me/",
        "/api/trips/",
        "/api/trips/{trip_id}/",
        "/api/trips/{trip_id}/members/",
        "/api/trips/{trip_id}/members/{user_id}/",
        "/api/trips/{trip_id}/events/",
        "/api/trips/{trip_id}/conflicts/",
        "/api/trips/{trip_id}/conflicts/{conflict_id}/resolve/",
    } <= set(schema["paths"])


@pytest.mark.parametrize("gone", ["deleted", "deactivated"])
def test_refreshing_the_token_of_a_deleted_or_inactive_user_is_a_401(client, alice, gone):
    pair = client.post(
        "/api/auth/token/", {"username": "alice", "password": factories.PASSWORD}, format="json"
    ).json()
    if gone == "deleted":
        alice.delete()
    else:
        alice.is_active = False
        alice.save()
    response = client.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["code"] == "AUTHENTICATION_FAILED"
    assert "access" not in body


@pytest.mark.parametrize("url", ["/api/auth/token/", "/api/trips/", "/api/agents/runs/"])
@pytest.mark.parametrize("nesting", ["[", '{"a":'])
def test_json_nested_too_deeply_to_parse_is_a_400_envelope(client, alice, url, nesting):
    depth = 100_000  # past Python's recursion limit, as far as any JSON parser here goes
    closing = "]" if nesting == "[" else "}"
    client.force_authenticate(alice)
    response = client.post(
        url, nesting * depth + "1" + closing * depth, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert "nested" in body["error"]["message"]


def test_a_recursion_error_raised_outside_parsing_stays_a_server_error():
    """Only the parser's RecursionError is the client's: one from our own code is a 500."""
    handler = api_settings.EXCEPTION_HANDLER  # realtime.rest's
    try:
        raise RecursionError("ours")
    except RecursionError as error:
        assert handler(error, {}) is None
