"""Which browser origins may open a socket: the one rule the handshake and the page both apply.

Browsers send `Origin` with every WebSocket handshake; a page on another site must not open a
socket in a signed-in user's name. Allowed: the listed origins (REALTIME_ALLOWED_ORIGINS, with
PUBLIC_URL's origin), and, when REALTIME_ALLOW_SAME_HOST_ORIGIN is on (the default without
PUBLIC_URL), an origin on the request's own host and port, whatever its scheme, as Channels'
AllowedHostsOriginValidator does, provided the site serves that host (ALLOWED_HOSTS, so a name
rebound to our address by DNS is not one). docs/decisions.md says why production lists instead.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

# A browser drops the scheme's default port from Origin and a client may or may not put it in
# Host: the same-host comparison is scheme-agnostic, so both default ports count as none.
_DEFAULT_PORTS = {"", "80", "443"}
# An origin quoted back in advice (and so in logs) only when it looks like one: it is client input.
_PLAIN_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[a-z0-9.:\[\]-]+", re.IGNORECASE)


def _host_key(netloc: str) -> tuple[str, str] | None:
    domain, port = split_domain_port(netloc)
    if not domain:
        return None
    return domain, "" if port in _DEFAULT_PORTS else port


def same_host(origin: str, host: str) -> bool:
    """Whether `origin` (scheme://host[:port]) names `host` (a Host header, host[:port])."""
    try:
        netloc = urlsplit(origin.strip()).netloc
    except ValueError:
        return False
    if "@" in netloc:
        return False
    origin_key = _host_key(netloc)
    return origin_key is not None and origin_key == _host_key(host.strip())


def origin_allowed(origin: str | None, allowed: list[str], *, host: str | None = None) -> bool:
    """Browsers always send Origin; other clients cannot be protected by it, so none is allowed.
    `allowed` lists origins ("*" is any); with `host` (a Host header the caller has checked the
    site serves), an origin on that same host and port is allowed too."""
    if origin is None:
        return True
    if "*" in allowed or origin.rstrip("/") in {item.rstrip("/") for item in allowed}:
        return True
    return host is not None and same_host(origin, host)


def served_host(host: str | None) -> str | None:
    """`host` when the settings allow same-host origins and the site serves it, else None."""
    if not host or not settings.REALTIME_ALLOW_SAME_HOST_ORIGIN:
        return None
    domain, _ = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:  # as Django's request.get_host() does
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    return host if domain and validate_host(domain, allowed_hosts) else None


def socket_origin_allowed(origin: str | None, host: str | None) -> bool:
    """The deployment's rule for a handshake with this Origin and Host headers."""
    return origin_allowed(origin, settings.REALTIME_ALLOWED_ORIGINS, host=served_host(host))


def refusal_advice(origin: str) -> str:
    """What to change so that pages on `origin` may connect."""
    if settings.PUBLIC_URL:
        return (
            f"add it to REALTIME_ALLOWED_ORIGINS (added to PUBLIC_URL's origin, "
            f"{settings.PUBLIC_URL!r}), or set PUBLIC_URL to the URL users open"
        )
    example = (
        f" (e.g. REALTIME_ALLOWED_ORIGINS={origin})" if _PLAIN_ORIGIN.fullmatch(origin) else ""
    )
    return f"add it to REALTIME_ALLOWED_ORIGINS{example}, or set PUBLIC_URL to the URL users open"
