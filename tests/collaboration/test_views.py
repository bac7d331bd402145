"""The trip page says, before it tries, when its own origin would be refused by the socket."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

BANNER = 'class="origin-refused"'


def _page(host: str, *, secure: bool = False) -> str:
    response = Client().get("/trips/1/edit", HTTP_HOST=host, secure=secure)
    assert response.status_code == 200
    return response.content.decode()


def test_no_banner_when_the_page_can_connect_on_its_own_host_and_port(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.REALTIME_ALLOWED_ORIGINS = ["http://127.0.0.1:8000"]
    settings.REALTIME_ALLOW_SAME_HOST_ORIGIN = True
    assert BANNER not in _page("127.0.0.1:9000")


def test_banner_names_the_refused_origin_and_the_setting(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.REALTIME_ALLOWED_ORIGINS = ["http://127.0.0.1:8000"]
    settings.REALTIME_ALLOW_SAME_HOST_ORIGIN = False
    settings.PUBLIC_URL = ""
    page = _page("127.0.0.1:9000")
    assert BANNER in page and 'role="alert"' in page
    assert "<code>http://127.0.0.1:9000</code>" in page
    assert "REALTIME_ALLOWED_ORIGINS=http://127.0.0.1:9000" in page
    assert BANNER not in _page("127.0.0.1:8000")


def test_banner_uses_the_scheme_the_page_was_served_with(settings):
    settings.ALLOWED_HOSTS = ["trips.example.com"]
    settings.REALTIME_ALLOWED_ORIGINS = ["http://trips.example.com"]
    settings.REALTIME_ALLOW_SAME_HOST_ORIGIN = False
    settings.PUBLIC_URL = "http://trips.example.com"
    assert BANNER not in _page("trips.example.com")
    page = _page("trips.example.com", secure=True)
    assert "<code>https://trips.example.com</code>" in page and "PUBLIC_URL" in page
