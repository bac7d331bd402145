"""Who may read a process's Prometheus registry (`/metrics`): a scraper that sends the bearer
token METRICS_TOKEN, or one whose address is in METRICS_ALLOWED_IPS. With neither set, the
registry is open in development and closed in production (docs/decisions.md, "Who reads
/metrics").

The address is REMOTE_ADDR, which tripsage.proxies resolved from the connection's peer: a client
cannot claim an allowed address with its own X-Forwarded-For unless it connects from a trusted
proxy (TRUSTED_PROXIES)."""

from __future__ import annotations

import functools
import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django_prometheus import exports

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    # Each entry was checked at start-up (tripsage.settings.base).
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address_allowed(remote_addr: str, entries: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(entries))


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics; otherwise the response that refuses it: 401
    when a token would let it in and none was sent, 403 for anything else."""
    token: str = settings.METRICS_TOKEN
    allowed_ips = tuple(settings.METRICS_ALLOWED_IPS)
    if not token and not allowed_ips:
        if not settings.PRODUCTION:
            return None
        return _refused(
            403,
            "/metrics is closed: set METRICS_TOKEN (Prometheus sends it as a bearer token) or "
            "METRICS_ALLOWED_IPS (the addresses Prometheus scrapes from); docs/metrics.md.\n",
        )
    if allowed_ips and _address_allowed(request.META.get("REMOTE_ADDR", ""), allowed_ips):
        return None
    if token:
        sent = _bearer(request)
        if sent is None:
            response = _refused(401, "/metrics needs a bearer token (METRICS_TOKEN).\n")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        if hmac.compare_digest(sent.encode(), token.encode()):
            return None
        return _refused(403, "/metrics: wrong bearer token.\n")
    return _refused(403, "/metrics: this address is not in METRICS_ALLOWED_IPS.\n")


def _refused(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


@never_cache
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """django-prometheus's exposition of this process's registry, behind `refusal`."""
    refused = refusal(request)
    if refused is not None:
        return refused
    response: HttpResponse = exports.ExportToDjangoView(request)
    return response
