"""REST errors in the seed's envelope, with the same codes as the WebSocket protocol."""

from __future__ import annotations

import logging
import math
import re
import threading
import traceback
import uuid
from typing import Any

import redis
from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCacheClient
from django.db import InterfaceError, OperationalError
from redis.commands.core import Script
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler, set_rollback

import protocol
from events import security
from metrics import instruments
from protocol import ErrorCode

_CODES = {
    status.HTTP_400_BAD_REQUEST: ErrorCode.INVALID_MESSAGE_FORMAT,
    status.HTTP_401_UNAUTHORIZED: ErrorCode.AUTHENTICATION_FAILED,
    status.HTTP_403_FORBIDDEN: ErrorCode.AUTHORIZATION_FAILED,
    status.HTTP_404_NOT_FOUND: ErrorCode.AUTHORIZATION_FAILED,
    status.HTTP_405_METHOD_NOT_ALLOWED: ErrorCode.INVALID_MESSAGE_FORMAT,
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: ErrorCode.MESSAGE_TOO_LARGE,
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: ErrorCode.INVALID_MESSAGE_FORMAT,
    status.HTTP_429_TOO_MANY_REQUESTS: ErrorCode.RATE_LIMIT_EXCEEDED,
}


def error_envelope_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is away (restarting, unreachable): unavailable for a moment, worth a
        # retry, like the socket's SERVER_ERROR with `retryable: true`.
        logger.error("REST request failed: the database is unavailable", exc_info=exc)
        set_rollback()
        envelope = protocol.error_message(
            ErrorCode.SERVER_ERROR,
            "The service is unavailable for a moment; try again.",
            details={"retryable": True},
        )
        return Response(envelope, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": "1"})  # fmt: skip
    if isinstance(exc, RecursionError) and _raised_while_parsing(exc):
        exc = exceptions.ParseError("The request body is nested too deeply to parse.")
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected fault: Django's 500 handling and logging
    code = _CODES.get(response.status_code, ErrorCode.SERVER_ERROR)
    data = _echoable(response.data)
    if isinstance(exc, exceptions.ValidationError):
        message, details = "Invalid request.", {"fields": data}
    elif isinstance(data, dict) and "detail" in data:
        message = str(data["detail"])
        details = {key: value for key, value in data.items() if key != "detail"}
        default_code = getattr(exc, "default_code", None)
        if default_code:
            details.setdefault("reason", getattr(data["detail"], "code", default_code))
    else:
        message, details = "Request failed.", {"errors": data}
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        details.setdefault("token_type", "jwt")
    if isinstance(exc, exceptions.Throttled):
        # The seed's RATE_LIMIT_EXCEEDED details, from the throttle that refused.
        refusal = getattr(context.get("request"), "throttle_refusal", {})
        details.update(refusal, remaining=0)
        wait = getattr(exc, "wait", None)  # set by Throttled(); djangorestframework-stubs omit it
        details["retry_after"] = max(1, math.ceil(wait or 0))
        details.pop("reason", None)
        details["reason"] = "rate_limited"
    if response.status_code == status.HTTP_403_FORBIDDEN:
        _record_denied(context.get("request"), details)
    response.data = protocol.error_message(code, message, details=details)
    return response


def _record_denied(request: Any, details: dict[str, Any]) -> None:
    """A signed-in caller refused a right (403) in the security log. A non-member's 404 is not
    told from a missing object's, by design (docs/decisions.md, "No enumeration")."""
    user = getattr(request, "user", None)
    security.record(
        security.Event.ACCESS_DENIED,
        user_id=user.pk if user is not None and user.is_authenticated else None,
        remote_addr=None if request is None else request.META.get("REMOTE_ADDR"),
        reason=str(details.get("reason") or "not_allowed"),
        action=None if request is None else f"{request.method} {request.path}",
    )


# Where DRF runs the request's parsers (private: djangorestframework-stubs omit it).
_PARSING = Request._parse.__code__  # type: ignore[attr-defined]


def _raised_while_parsing(exc: BaseException) -> bool:
    """Whether `exc` came from parsing the request body. DRF's JSONParser turns the json module's
    ValueError into a 400 but lets its RecursionError (JSON nested past the recursion limit)
    escape as a 500; raised anywhere else, a RecursionError is the server's own fault."""
    return any(frame.f_code is _PARSING for frame, _ in traceback.walk_tb(exc.__traceback__))


# JSON's "\ud800" decodes to a lone surrogate: a Python string, but no Unicode text. DRF's
# messages echo what was sent (an unknown field's name, a choice that is none of the choices),
# and UTF-8 cannot encode it: the response would be a 500 instead of the 400 it is.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _echoable(value: Any) -> Any:
    """An error's data with each lone surrogate in its strings and keys replaced by U+FFFD, the
    replacement character (an ErrorDetail keeps its code)."""
    if isinstance(value, str):
        if value.isascii() or not _LONE_SURROGATE.search(value):
            return value
        text = _LONE_SURROGATE.sub("\ufffd", value)
        if isinstance(value, exceptions.ErrorDetail):
            return exceptions.ErrorDetail(text, value.code)
        return text
    if isinstance(value, dict):
        return {_echoable(key): _echoable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_echoable(item) for item in value]
    return value


logger = logging.getLogger(__name__)


# One attempt against a sliding window, in one step: KEYS[1] the log of the attempts of the
# window (a sorted set, scored by time); ARGV the time now, the window's seconds, the limit and
# this attempt's member (unique). DRF's window: attempts at or before now - window are dropped;
# under the limit, the attempt is logged and the log expires a window after it. Returns
# {allowed, attempts in the window (this one included when logged), the oldest one's time}.
_SLIDING_WINDOW = """
local log = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local kind = redis.call('TYPE', log).ok
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', log)  -- DRF's pickled list, written by a process of an earlier release
end
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
local count = redis.call('ZCARD', log)
local allowed = 0
if count < tonumber(ARGV[3]) then
  redis.call('ZADD', log, now, ARGV[4])
  redis.call('PEXPIRE', log, math.ceil(window * 1000))
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
return {allowed, count, oldest[2] or false}
"""
_sliding_window: Script | None = None


def _redis_client(cache: Any, key: str) -> redis.Redis | None:
    """The client of `cache` when it is Django's RedisCache, for `key`: its connection pool, so
    Sentinel (SentinelCachePool) and the socket timeouts hold as for any cache call. None for
    any other cache (LocMemCache keeps its `_cache` in a dict)."""
    backend = cache._cache  # RedisCache's RedisCacheClient, also through the `cache` proxy
    if not isinstance(backend, RedisCacheClient):
        return None
    client: redis.Redis = backend.get_client(key, write=True)
    return client


# DRF's read-modify-write of a throttle's history in a process-local cache (no Redis configured,
# or the sign-in fallback while Redis does not answer): one request at a time, so that threads
# serving requests at once cannot each read the budget unspent.
_local_lock = threading.Lock()


class _Throttle(SimpleRateThrottle):
    """DRF's SimpleRateThrottle (its sliding window, keys and wait) made atomic: in Redis, each
    check is one Lua script (trim, count, log) that every process shares; in a process-local
    cache, DRF's own check under a lock."""

    cache_error_logged = False
    # Set by SimpleRateThrottle.__init__ from the rate; djangorestframework-stubs omit them.
    num_requests: int | None
    duration: int | None
    # Redis's answer to the last check: (attempts in the window, the oldest one's time).
    counted: tuple[int, float | None] | None = None

    def get_ident(self, request: Any) -> str:
        """REMOTE_ADDR, never X-Forwarded-For (whatever NUM_PROXIES says): tripsage.proxies
        put the client's address there, from a trusted proxy's word only."""
        return str(request.META.get("REMOTE_ADDR") or "")

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            allowed = self.allow_in_cache(request, view)
        except Exception:  # the cache (Redis) is away
            if not _Throttle.cache_error_logged:
                _Throttle.cache_error_logged = True
                logger.exception(
                    "REST throttling skipped while the cache does not answer (sign-ins are "
                    "counted in each process instead)"
                )
            instruments.RATE_LIMITER_FALLBACKS.inc()
            allowed = self.allow_without_cache(request, view)
        if allowed:
            return True
        request.throttle_refusal = {
            "limit": self.num_requests,
            "window_seconds": self.duration,
            "scope": self.scope,
        }
        return False

    def allow_in_cache(self, request: Any, view: Any) -> bool:
        """One attempt against the window of `self.cache`: atomic in Redis (one script for
        every process), under a lock in a process-local cache (this process only)."""
        self.counted = None
        if self.rate is None:
            return True
        assert self.duration is not None and self.num_requests is not None  # parsed from rate
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        cache_key = self.cache.make_and_validate_key(key)
        client = _redis_client(self.cache, cache_key)
        if client is None:
            return self.allow_locally(request, view)
        global _sliding_window
        if _sliding_window is None:
            _sliding_window = client.register_script(_SLIDING_WINDOW)
        self.key, self.now = key, self.timer()
        member = f"{self.now!r}:{uuid.uuid4().hex}"  # two attempts at one instant: two members
        allowed, count, oldest = _sliding_window(
            [cache_key], [repr(self.now), self.duration, self.num_requests, member], client=client
        )
        self.counted = (int(count), None if oldest is None else float(oldest))
        return bool(allowed)

    def allow_locally(self, request: Any, view: Any) -> bool:
        """DRF's check, one request at a time."""
        with _local_lock:
            return bool(SimpleRateThrottle.allow_request(self, request, view))

    def wait(self) -> float | None:
        """DRF's wait (Retry-After) from Redis's count and oldest attempt, or DRF's own."""
        if self.counted is None:
            return super().wait()
        assert self.duration is not None and self.num_requests is not None  # a rate was set
        count, oldest = self.counted
        remaining = self.duration - (self.now - oldest) if oldest is not None else self.duration
        available = self.num_requests - count + 1
        if available <= 0:
            return None
        return remaining / float(available)

    def allow_without_cache(self, request: Any, view: Any) -> bool:
        """While the shared cache does not answer: serve, do not fail every request."""
        return True


class UserThrottle(_Throttle):
    """REST_RATE_USER per user (per address for anonymous requests), counted in CACHES."""

    scope = "user"

    def get_rate(self) -> str:
        return settings.REST_RATE_USER  # read per request: deployments and tests can change it

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = request.user
        ident = user.pk if user and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AddressThrottle(_Throttle):
    """REST_RATE_IP per client address, whoever is signed in. The address is REMOTE_ADDR alone:
    behind a proxy listed in TRUSTED_PROXIES, the client it vouches for (tripsage.proxies);
    a client's own X-Forwarded-For never reaches here."""

    scope = "ip"

    def get_rate(self) -> str:
        return settings.REST_RATE_IP

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class SignInThrottle(AddressThrottle):
    """SIGN_IN_RATE per client address: one budget for every way to sign in with a password
    (the token endpoint, the page's sign-in, the admin's and the browsable API's login;
    realtime.sign_in_limits), so no pathway is weaker than another. Over it, the password is
    not checked. Every attempt counts, a right password too: the budget is what an address may
    try, whatever it knows."""

    scope = "sign_in"
    # Where the budget is kept while the shared cache does not answer: this process only, so
    # the limit holds per process instead of letting every guess through.
    fallback_cache = LocMemCache("sign-in-fallback", {})

    def get_rate(self) -> str:
        return settings.SIGN_IN_RATE

    def allow_without_cache(self, request: Any, view: Any) -> bool:
        self.cache = self.fallback_cache
        self.counted = None
        return self.allow_locally(request, view)
