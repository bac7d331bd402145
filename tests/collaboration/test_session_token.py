"""`GET /trips/session-token/` (collaboration/views.py): the trip page's socket token comes from
its signed-in session only, and is a token of that session's user (docs/security.md, ASVS
4.4.4)."""

from __future__ import annotations

import pytest
from django.test import Client

from realtime.tokens import verify_access_token
from tests import factories

pytestmark = pytest.mark.django_db


def test_a_socket_token_is_given_to_a_signed_in_session_only():
    alice = factories.make_user("alice")
    factories.make_user("bob")

    anonymous = Client().get("/trips/session-token/")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert "access" not in anonymous.json()

    client = Client()
    assert client.login(username="alice", password=factories.PASSWORD)
    answer = client.get("/trips/session-token/")
    assert answer.status_code == 200
    assert "no-cache" in answer["Cache-Control"]  # never kept by a cache for someone else
    assert verify_access_token(answer.json()["access"]).user_id == str(alice.pk)

    client.post("/trips/sign-out/")
    assert client.get("/trips/session-token/").status_code == 401
