"""Trusted reverse proxies: the client's address and scheme come from X-Forwarded-* headers only
when the connection's peer is a proxy named in TRUSTED_PROXIES; from anyone else they are removed.

Everything downstream reads the client from the scope: Django's REMOTE_ADDR and request.scheme
(SECURE_PROXY_SSL_HEADER included), the REST throttles, the per-address connect limit in
realtime.auth and the metrics' client address. So with this middleware around the whole
application, a client that sends its own X-Forwarded-For (straight to a process, or through a
proxy that appends to it) never chooses the address its limits are counted against.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers that describe the client or the original request as a proxy saw it. From a peer that
# is not a trusted proxy they are the client's own claims, and nothing downstream may see them.
_FORWARDING_HEADERS = frozenset({b"forwarded", b"x-real-ip"})
_FORWARDING_PREFIX = b"x-forwarded-"

_SCHEMES = {
    ("http", "http"): "http",
    ("http", "https"): "https",
    ("websocket", "http"): "ws",
    ("websocket", "https"): "wss",
}


def parse_networks(
    entries: Iterable[str], setting: str, example: str, advice: str
) -> tuple[Network, ...]:
    """The networks of a setting's entries (IP addresses or CIDR ranges); a malformed entry
    stops start-up, naming the setting and the entry, with an `example` and `advice`."""
    networks = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{setting}: {text!r} is neither an IP address nor a CIDR range (e.g. "
                f"{example} or 172.30.0.0/24). {advice}"
            ) from None
    return tuple(networks)


def parse_trusted_proxies(entries: Iterable[str]) -> tuple[Network, ...]:
    """The networks of TRUSTED_PROXIES entries."""
    return parse_networks(
        entries,
        "TRUSTED_PROXIES",
        "127.0.0.2",
        "List the addresses your reverse proxy connects from, comma-separated, or leave it "
        "empty to trust no proxy.",
    )


@functools.lru_cache(maxsize=4096)  # a storm's connects come from the same few addresses
def parse_address(text: str) -> Address | None:
    """An address as proxies write it in X-Forwarded-For or as the server reports its peer
    (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`, `192.0.2.1:443`);
    IPv4-mapped IPv6 as IPv4. None for anything else: the caller decides, nothing raises."""
    text = text.strip()
    if text.startswith("["):
        text, closed, port = text[1:].partition("]")
        if not closed or (port and not port.startswith(":")):
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)
def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """The comma-separated items of every `name` header, in order (several headers of one name
    are one list, as HTTP says)."""
    items: list[str] = []
    for key, value in headers:
        if key.lower() == name:
            items.extend(value.decode("latin-1").split(","))
    return items


def forwarded_client(
    peer: Address, forwarded_for: list[str], networks: tuple[Network, ...]
) -> Address:
    """The client behind a trusted `peer`: the rightmost X-Forwarded-For entry that is not a
    trusted proxy. Walking from the right, each trusted proxy vouches for the entry before it;
    a malformed entry breaks the chain, so the last address vouched for (the nearest trusted
    proxy) is the client. A chain of trusted proxies only: its leftmost one."""
    client = peer
    for entry in reversed(forwarded_for):
        address = parse_address(entry)
        if address is None:
            return client
        client = address
        if not _trusted(address, networks):
            return client
    return client


def resolve_scope(scope: dict[str, Any], networks: tuple[Network, ...]) -> dict[str, Any]:
    """The scope as the application must see it: from a trusted proxy, `client` and `scheme`
    from its X-Forwarded-For and X-Forwarded-Proto; from anyone else, without forwarding
    headers. A new scope; the server's is not changed."""
    headers = [(bytes(key), bytes(value)) for key, value in scope.get("headers", [])]
    client = scope.get("client")
    peer = parse_address(str(client[0])) if client else None
    if peer is None or not _trusted(peer, networks):
        kept = [
            (key, value)
            for key, value in headers
            if not (
                key.lower() in _FORWARDING_HEADERS or key.lower().startswith(_FORWARDING_PREFIX)
            )
        ]
        if len(kept) == len(headers):
            return scope
        return {**scope, "headers": kept}

    resolved = dict(scope)
    forwarded_for = _values(headers, b"x-forwarded-for")
    if forwarded_for:
        address = forwarded_client(peer, forwarded_for, networks)
        if address != peer:
            # The client's port is not known here (nginx does not send it); 0 as daphne does.
            resolved["client"] = [str(address), 0]
    protos = [item.strip().lower() for item in _values(headers, b"x-forwarded-proto")]
    if protos:
        # The nearest proxy's word: it saw the connection it received.
        scheme = _SCHEMES.get((scope["type"], protos[-1]))
        if scheme is not None:
            resolved["scheme"] = scheme
    return resolved


class TrustedProxyMiddleware:
    """ASGI middleware around the whole application: HTTP and WebSocket scopes pass through
    resolve_scope with the networks of TRUSTED_PROXIES (settings), others untouched.

    A tail call, as tripsage.routing's routers: it returns the application's coroutine rather
    than awaiting it, so no frame of its own lives as long as a socket."""

    # A plain `__call__` would make asgiref (daphne) take this for an ASGI 2 application.
    _asgi_single_callable = True

    def __init__(self, app: Any, trusted_proxies: Iterable[str] | None = None) -> None:
        if trusted_proxies is None:
            trusted_proxies = settings.TRUSTED_PROXIES
        self.app = app
        self.networks = parse_trusted_proxies(trusted_proxies)

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[Any]:
        if scope["type"] in ("http", "websocket"):
            scope = resolve_scope(scope, self.networks)
        return self.app(scope, receive, send)
