"""The pages' server side (collaboration/views.py): who gets which page, sign-in and sign-out,
the favicon, the trip page's service worker. What the pages do in a browser is
tests/browser/test_pages.py."""

from __future__ import annotations

import pytest
from django.test import Client

from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    return factories.make_crew()  # alice owner, bob editor, carol viewer


def signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=factories.PASSWORD)
    return client


def test_my_trips_asks_a_stranger_to_sign_in_first():
    response = Client().get("/trips/")
    assert response.status_code == 302
    assert response["Location"] == "/trips/sign-in/?next=/trips/"


def test_my_trips_lists_only_mine_with_my_role_and_an_invite_form_for_owners(crew):
    _alice, _bob, _carol, trip = crew
    not_hers = factories.make_trip(factories.make_user("dora"))
    page = signed_in("carol").get("/trips/").content.decode()
    assert f'data-trip-id="{trip.pk}" data-role="viewer"' in page
    assert f'data-trip-id="{not_hers.pk}"' not in page
    assert "invite-form" not in page
    page = signed_in("alice").get("/trips/").content.decode()
    assert f'data-trip-id="{trip.pk}" data-role="owner"' in page
    assert f'id="invite-user-{trip.pk}"' in page


def test_a_sessions_non_member_gets_a_page_with_nothing_to_edit(crew):
    _, _, _, trip = crew
    factories.make_user("mallory")
    response = signed_in("mallory").get(f"/trips/{trip.pk}/edit")
    assert response.status_code == 403
    page = response.content.decode()
    assert "You are not a member of this trip" in page
    assert "trip-form" not in page and ">Save<" not in page
    # No such trip: the same answer (ids are not probed).
    assert signed_in("mallory").get("/trips/999999/edit").status_code == 403
    assert signed_in("bob").get(f"/trips/{trip.pk}/edit").status_code == 200


def test_sign_in_goes_where_the_user_was_going_and_sign_out_takes_a_post(crew):
    client = Client()
    response = client.post(
        "/trips/sign-in/",
        {"username": "bob", "password": factories.PASSWORD, "next": "/trips/1/edit"},
    )
    assert response.status_code == 302 and response["Location"] == "/trips/1/edit"
    assert client.get("/trips/").status_code == 200
    assert client.get("/trips/sign-out/").status_code == 405  # a link cannot sign anyone out
    response = client.post("/trips/sign-out/", {"next": "/trips/sign-in/?next=/trips/"})
    assert response["Location"] == "/trips/sign-in/?next=/trips/"
    assert client.get("/trips/").status_code == 302


def test_a_wrong_password_is_refused_on_the_page():
    factories.make_user("bob")
    response = Client().post("/trips/sign-in/", {"username": "bob", "password": "nope"})
    assert response.status_code == 200
    assert "Wrong username or password" in response.content.decode()


def test_the_favicon_is_the_static_svg():
    response = Client().get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("tripsage/favicon.svg")


def test_the_service_worker_is_served_as_javascript_from_under_trips_and_never_kept_stale():
    # Served from /trips/ so that its scope covers /trips/<id>/edit (a worker's scope cannot be
    # wider than its script's folder); anyone may fetch it, as any static script.
    response = Client().get("/trips/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    script = response.content.decode()
    assert 'const STATIC = "/static/tripsage/";' in script
    assert "{%" not in script  # the template was rendered


def test_the_trip_page_names_its_service_worker_and_its_sessions_user(crew):
    _, bob, _, trip = crew
    page = signed_in("bob").get(f"/trips/{trip.pk}/edit").content.decode()
    assert 'data-service-worker="/trips/sw.js"' in page
    assert f'data-user-id="{bob.pk}"' in page
    page = Client().get(f"/trips/{trip.pk}/edit").content.decode()
    assert 'data-user-id=""' in page  # signed in on the page: the token says who
