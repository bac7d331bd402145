"""protocol.origins: which browser origins may open a socket, without a socket."""

from __future__ import annotations

import pytest
from django.test import override_settings

from protocol.origins import (
    origin_allowed,
    refusal_advice,
    same_host,
    served_host,
    socket_origin_allowed,
)

LISTED = ["http://127.0.0.1:8000", "https://app.example.com/"]


def test_no_origin_is_allowed_as_non_browser_clients_send_none():
    assert origin_allowed(None, [])


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8000", "https://app.example.com"])
def test_listed_origins_are_allowed_whatever_the_trailing_slash(origin):
    assert origin_allowed(origin, LISTED)
    assert origin_allowed(origin + "/", LISTED)


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:9000", "https://127.0.0.1:8000", "https://evil.example", "null"]
)
def test_unlisted_origins_are_refused_without_a_host(origin):
    assert not origin_allowed(origin, LISTED)


def test_star_allows_every_origin():
    assert origin_allowed("https://anything.example", ["*"])


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:9000", "127.0.0.1:9000"),
        ("https://127.0.0.1:9000", "127.0.0.1:9000"),  # scheme-agnostic, as Channels
        ("http://LocalHost:9000", "localhost:9000"),
        ("http://[::1]:9000", "[::1]:9000"),
        ("https://trips.example.com", "trips.example.com"),
        ("https://trips.example.com", "trips.example.com:443"),  # a default port is none
        ("http://trips.example.com", "trips.example.com:80"),
    ],
)
def test_an_origin_on_the_requests_own_host_and_port_is_allowed(origin, host):
    assert same_host(origin, host)
    assert origin_allowed(origin, LISTED, host=host)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:9001", "127.0.0.1:9000"),  # another port
        ("http://127.0.0.1", "127.0.0.1:9000"),
        ("http://localhost:9000", "127.0.0.1:9000"),  # another name for it: list it
        ("https://evil.example", "127.0.0.1:9000"),
        ("http://127.0.0.1.evil.example:9000", "127.0.0.1:9000"),
        ("http://user@127.0.0.1:9000", "127.0.0.1:9000"),
        ("null", "127.0.0.1:9000"),
        ("http://[::1", "[::1]:9000"),  # not a URL
        ("http://127.0.0.1:9000", ""),
    ],
)
def test_an_origin_on_another_host_or_port_is_refused(origin, host):
    assert not same_host(origin, host)
    assert not origin_allowed(origin, LISTED, host=host)


def test_a_same_host_origin_counts_only_for_a_host_the_site_serves(settings):
    settings.REALTIME_ALLOW_SAME_HOST_ORIGIN = True
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.REALTIME_ALLOWED_ORIGINS = ["http://127.0.0.1:8000"]
    assert served_host("127.0.0.1:9000") == "127.0.0.1:9000"
    assert socket_origin_allowed("http://127.0.0.1:9000", "127.0.0.1:9000")
    # A name rebound to our address by DNS: the page and the Host are the attacker's.
    assert served_host("rebound.example:9000") is None
    assert not socket_origin_allowed("http://rebound.example:9000", "rebound.example:9000")
    assert not socket_origin_allowed("https://evil.example", "127.0.0.1:9000")
    assert socket_origin_allowed("http://127.0.0.1:8000", "127.0.0.1:9000")  # listed
    assert socket_origin_allowed(None, None)


def test_without_the_same_host_rule_only_listed_origins_connect(settings):
    settings.REALTIME_ALLOW_SAME_HOST_ORIGIN = False
    settings.ALLOWED_HOSTS = ["trips.example.com"]
    settings.REALTIME_ALLOWED_ORIGINS = ["https://trips.example.com"]
    assert served_host("trips.example.com") is None
    assert socket_origin_allowed("https://trips.example.com", "trips.example.com")
    assert not socket_origin_allowed("http://trips.example.com", "trips.example.com")


@override_settings(PUBLIC_URL="")
def test_refusal_advice_names_the_setting_and_quotes_only_a_plain_origin():
    advice = refusal_advice("http://127.0.0.1:9000")
    assert "REALTIME_ALLOWED_ORIGINS=http://127.0.0.1:9000" in advice
    assert "PUBLIC_URL" in advice
    odd = refusal_advice("http://x\n2026-01-01 INFO forged")
    assert "REALTIME_ALLOWED_ORIGINS" in odd and "forged" not in odd


@override_settings(PUBLIC_URL="https://trips.example.com")
def test_refusal_advice_with_public_url_says_the_list_adds_to_it():
    advice = refusal_advice("https://other.example")
    assert "REALTIME_ALLOWED_ORIGINS" in advice and "https://trips.example.com" in advice
