"""PUBLIC_URL, where users reach a deployment: parsed once, so hosts and origins derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class PublicURL:
    scheme: str
    host: str  # as ALLOWED_HOSTS wants it: lower case, an IPv6 address in brackets
    origin: str  # as browsers send it: scheme://host[:port], no default port

    @property
    def is_https(self) -> bool:
        return self.scheme == "https"


def parse_public_url(value: str, name: str = "PUBLIC_URL") -> PublicURL:
    """The URL's scheme, host and origin; ImproperlyConfigured saying what is wrong otherwise."""
    example = f"{name}=https://trips.example.com or {name}=http://localhost:8080"

    def bad(reason: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{name}={value!r} {reason}: use e.g. {example}.")

    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as error:
        raise bad(f"is not a URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise bad("must start with http:// or https://")
    if not parts.hostname:
        raise bad("has no host name")
    if parts.username is not None or parts.password is not None:
        raise bad("must not hold a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad(
            "must be the site's root, with no path, query or fragment (the service is served "
            "at / of its host)"
        )
    hostname = parts.hostname.lower()
    if any(char.isspace() for char in hostname):
        raise bad("has white space in its host name")
    host = f"[{hostname}]" if ":" in hostname else hostname
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return PublicURL(scheme=scheme, host=host, origin=f"{scheme}://{netloc}")
