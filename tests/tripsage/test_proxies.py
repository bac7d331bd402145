"""tripsage.proxies: the client's address and scheme from a trusted proxy only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from tripsage.proxies import TrustedProxyMiddleware, parse_address, parse_trusted_proxies

PROXY = "127.0.0.2"


class Seen:
    """The inner application: keeps the scope it was called with."""

    scope: dict[str, Any] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope


async def seen_by_app(
    peer: str | None,
    headers: list[tuple[str, str]],
    *,
    trusted: str = PROXY,
    type_: str = "http",
) -> dict[str, Any]:
    inner = Seen()
    middleware = TrustedProxyMiddleware(inner, trusted.split(","))
    scope = {
        "type": type_,
        "scheme": "http" if type_ == "http" else "ws",
        "path": "/",
        "client": [peer, 51000] if peer else None,
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }
    await middleware(scope, None, None)
    assert inner.scope is not None
    return inner.scope


def header_names(scope: dict[str, Any]) -> set[str]:
    return {name.decode() for name, _ in scope["headers"]}


SPOOFS = [
    ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "443"),
    ("x-real-ip", "203.0.113.9"),
    ("forwarded", "for=203.0.113.9;proto=https"),
]


@pytest.mark.parametrize("type_", ["http", "websocket"])
async def test_forwarding_headers_from_an_untrusted_peer_are_removed_and_change_nothing(type_):
    scope = await seen_by_app("127.0.0.1", [("host", "x"), *SPOOFS], type_=type_)
    assert scope["client"] == ["127.0.0.1", 51000]
    assert scope["scheme"] == ("http" if type_ == "http" else "ws")
    assert header_names(scope) == {"host"}


async def test_with_no_trusted_proxies_even_the_proxy_address_is_a_client():
    scope = await seen_by_app(PROXY, [("X-Forwarded-For", "203.0.113.9")], trusted="")
    assert scope["client"] == [PROXY, 51000]
    assert header_names(scope) == set()


async def test_a_scope_without_a_client_loses_its_forwarding_headers():
    scope = await seen_by_app(None, SPOOFS)
    assert scope["client"] is None
    assert header_names(scope) == set()


async def test_a_trusted_proxy_gives_the_client_address_and_keeps_its_headers():
    scope = await seen_by_app(PROXY, [("x-forwarded-for", "198.51.100.7")])
    assert scope["client"] == ["198.51.100.7", 0]
    assert header_names(scope) == {"x-forwarded-for"}


async def test_the_rightmost_untrusted_entry_is_the_client_not_what_the_client_prepended():
    # An appending proxy: the client's own claim on the left, the address the proxy saw last.
    scope = await seen_by_app(PROXY, [("x-forwarded-for", "203.0.113.9, 198.51.100.7")])
    assert scope["client"] == ["198.51.100.7", 0]


async def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    scope = await seen_by_app(
        PROXY,
        [("x-forwarded-for", "203.0.113.9, 198.51.100.7"), ("x-forwarded-for", "10.0.0.5")],
        trusted=f"{PROXY},10.0.0.0/8",
    )
    assert scope["client"] == ["198.51.100.7", 0]


async def test_only_trusted_proxies_in_the_header_gives_the_leftmost_of_them():
    scope = await seen_by_app(PROXY, [("x-forwarded-for", "10.0.0.9, 10.0.0.5")],
                              trusted=f"{PROXY},10.0.0.0/8")  # fmt: skip
    assert scope["client"] == ["10.0.0.9", 0]


@pytest.mark.parametrize(
    "value",
    ["", "   ", ",,,", "unknown", "not an address", "999.1.1.1", "[::1", "\x00\xff", "_hidden"],
)
async def test_a_malformed_entry_next_to_the_proxy_leaves_the_proxy_as_the_client(value):
    scope = await seen_by_app(PROXY, [("x-forwarded-for", value)])
    assert scope["client"] == [PROXY, 51000]


async def test_a_malformed_entry_stops_the_walk_so_what_lies_left_of_it_is_not_believed():
    scope = await seen_by_app(
        PROXY,
        [("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.5")],
        trusted=f"{PROXY},10.0.0.0/8",
    )
    assert scope["client"] == ["10.0.0.5", 0]


@pytest.mark.parametrize(
    ("entry", "client"),
    [
        ("198.51.100.7:4711", "198.51.100.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
    ],
)
async def test_addresses_with_ports_brackets_or_mapped_ipv4_are_understood(entry, client):
    scope = await seen_by_app(PROXY, [("x-forwarded-for", entry)])
    assert scope["client"] == [client, 0]


async def test_a_proxy_seen_as_ipv4_mapped_ipv6_is_trusted():
    scope = await seen_by_app("::ffff:127.0.0.2", [("x-forwarded-for", "198.51.100.7")])
    assert scope["client"] == ["198.51.100.7", 0]


async def test_a_cidr_range_is_trusted_as_a_whole():
    scope = await seen_by_app(
        "172.30.0.14", [("x-forwarded-for", "198.51.100.7")], trusted="172.30.0.0/24"
    )
    assert scope["client"] == ["198.51.100.7", 0]
    scope = await seen_by_app(
        "172.30.1.14", [("x-forwarded-for", "198.51.100.7")], trusted="172.30.0.0/24"
    )
    assert scope["client"] == ["172.30.1.14", 51000]


@pytest.mark.parametrize(
    ("type_", "proto", "scheme"),
    [
        ("http", "https", "https"),
        ("http", "HTTPS", "https"),
        ("http", "http", "http"),
        ("websocket", "https", "wss"),
        ("websocket", "http", "ws"),
        ("http", "gopher", "http"),  # not a scheme we know: the connection's own stays
        ("http", "http, https", "https"),  # the nearest proxy's word
    ],
)
async def test_x_forwarded_proto_from_a_trusted_proxy_sets_the_scheme(type_, proto, scheme):
    scope = await seen_by_app(PROXY, [("x-forwarded-proto", proto)], type_=type_)
    assert scope["scheme"] == scheme


async def test_other_scopes_pass_untouched():
    inner = Seen()
    scope = {"type": "lifespan"}
    await TrustedProxyMiddleware(inner, [])(scope, None, None)
    assert inner.scope is scope


def test_a_malformed_trusted_proxies_entry_stops_start_up_naming_it():
    with pytest.raises(ImproperlyConfigured, match=re.escape("'127.0.0.300'")):
        parse_trusted_proxies(["127.0.0.2", "127.0.0.300"])


def test_trusted_proxies_take_addresses_and_ranges():
    assert [str(n) for n in parse_trusted_proxies([" 127.0.0.2 ", "", "10.1.2.3/8", "::1"])] == [
        "127.0.0.2/32",
        "10.0.0.0/8",
        "::1/128",
    ]


def test_parse_address_never_raises():
    for text in ["", "[", "]", ":", "1:2", "[]:80", "a" * 10_000, "\udcff"]:
        assert parse_address(text) is None
