"""Base settings: embedded defaults (SQLite, in-memory channel layer), everything overridable
from the environment. Production hardening lives in production.py."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from realtime.redis_clients import parse_sentinels, redis_host
from tripsage.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_rate_limits,
    env_str,
    env_token,
    url_with_password,
)
from tripsage.proxies import parse_networks
from tripsage.public_url import parse_public_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# A development-only key so that `make run` works on a fresh machine; production.py requires
# DJANGO_SECRET_KEY, refuses this one and has no default.
DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", False)
# True only in production.py: commands that must never run there (seed_demo) look at it.
PRODUCTION = False

# --- Where users reach the service: one URL (production requires it). Its host is an allowed
# host, its origin an allowed origin for sockets and CSRF, and its scheme decides the cookies'
# Secure flag and HSTS. ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS and REALTIME_ALLOWED_ORIGINS add
# more (a health check's host, a second site); without PUBLIC_URL they replace the defaults.
PUBLIC_URL = env_str("PUBLIC_URL", "")
_PUBLIC = parse_public_url(PUBLIC_URL) if PUBLIC_URL else None


def _with_public(derived: str | None, name: str, default: list[str]) -> list[str]:
    listed = env_list(name, None if derived else default)
    return list(dict.fromkeys(([derived] if derived else []) + listed))


ALLOWED_HOSTS = _with_public(
    _PUBLIC.host if _PUBLIC else None, "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"]
)
CSRF_TRUSTED_ORIGINS = _with_public(_PUBLIC.origin if _PUBLIC else None, "CSRF_TRUSTED_ORIGINS", [])
# Over https: cookies only over TLS, and browsers told to use nothing else (HSTS, a year, the
# usual value; start lower while TLS is new). Over plain http they must be off, or nobody
# could sign in to the admin.
_HTTPS = bool(_PUBLIC and _PUBLIC.is_https)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 86400 if _HTTPS else 0)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "tripsage.apps.TripSageStaticFilesConfig",  # django.contrib.staticfiles (tripsage/apps.py)
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files (/api/docs/, /api/redoc/)
    "channels",
    "collaboration",
    "agents",
    "realtime",
    "metrics",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "events.security.request_context",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "tripsage.urls"
ASGI_APPLICATION = "tripsage.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite by default, DATABASE_URL (PostgreSQL in production and CI) when set.
DATABASE_URL = env_str("DATABASE_URL")
# The password apart from the URL, any characters as they are (a password inside DATABASE_URL
# must be URL-escaped: @ as %40, : as %3A, / as %2F, # as %23, % as %25).
DATABASE_PASSWORD = env_str("DATABASE_PASSWORD", "")
# Threads per process that run socket work's database calls (events.aio.db), each holding at
# most one persistent connection: with REST requests in flight, the connections a process can
# hold (docs/deployment.md). 8: the connect storm's rate (docs/performance.md S4) was
# reached with the 6 of asyncio's default on 2 cores, and 3 processes x (8 + a few requests)
# stay well under PostgreSQL's default max_connections of 100.
DATABASE_THREADS = env_int("DATABASE_THREADS", 8)
if DATABASE_THREADS < 1:
    raise ImproperlyConfigured(f"DATABASE_THREADS={DATABASE_THREADS}: at least 1.")
# Of those, how many may run catch-up reads at once (a socket's user and snapshot at connect, the
# events it missed, periodic checks): the rest stay free for live edits (events.aio.LanePool).
DATABASE_CATCH_UP_THREADS = env_int("DATABASE_CATCH_UP_THREADS", max(1, DATABASE_THREADS // 4))
if not 1 <= DATABASE_CATCH_UP_THREADS <= DATABASE_THREADS:
    raise ImproperlyConfigured(
        f"DATABASE_CATCH_UP_THREADS={DATABASE_CATCH_UP_THREADS}: from 1 to DATABASE_THREADS "
        f"({DATABASE_THREADS})."
    )
# HTTP requests (REST, admin, pages) a process runs at once; each holds a database connection
# on a thread of its own while it runs, the rest wait (tripsage/http_limit.py). A process then
# holds at most DATABASE_THREADS + HTTP_MAX_CONCURRENT_REQUESTS connections.
# The garbage collector's thresholds (gc.set_threshold) for server processes (tripsage.asgi):
# generation 0 collects after this many allocations, and each older one after that many
# collections of the one before. Python's default 700,10,10 cost a fifth of the CPU of a
# connect storm (docs/performance.md, S4).
_gc = env_list("GC_THRESHOLDS", ["20000", "20", "20"])
if len(_gc) != 3 or not all(n.isdecimal() and int(n) > 0 for n in _gc):
    raise ImproperlyConfigured(f"GC_THRESHOLDS={','.join(_gc)}: three positive integers.")
GC_THRESHOLDS = (int(_gc[0]), int(_gc[1]), int(_gc[2]))
HTTP_MAX_CONCURRENT_REQUESTS = env_int("HTTP_MAX_CONCURRENT_REQUESTS", 16)
if HTTP_MAX_CONCURRENT_REQUESTS < 1:
    raise ImproperlyConfigured(
        f"HTTP_MAX_CONCURRENT_REQUESTS={HTTP_MAX_CONCURRENT_REQUESTS}: at least 1."
    )
# Behind PgBouncer in transaction mode a connection is the server's only for one transaction:
# no server-side cursors (QuerySet.iterator() would declare one and fetch it in later
# transactions) and no server-side prepared statements (psycopg's, off in Django by default).
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", False)
# Persistent connections: a long-running server would otherwise open a PostgreSQL connection
# for every message that touches the database (profiled: ~2 ms and a GIL-holding thread each).
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60)
# Health checks: a persistent connection the server has ended (a restart, pg_terminate_backend,
# an idle timeout) is re-opened before a query fails on it. Django's check is a "SELECT 1" before
# the first query of each request; socket messages (events.aio.db) look at the connection's
# socket instead, with no round trip, and REST requests under daphne open a connection each
# (Django's ASGI handler runs each request on a thread of its own), so it costs nothing there.
DATABASE_CONN_HEALTH_CHECKS = env_bool("DATABASE_CONN_HEALTH_CHECKS", True)
# Seconds a new PostgreSQL connection may take: a database host that does not answer costs a
# SERVER_ERROR (retryable) after this long instead of holding a database thread and the client
# for psycopg's default of 130 s. A connect_timeout in DATABASE_URL wins.
DATABASE_CONNECT_TIMEOUT_SECONDS = env_int("DATABASE_CONNECT_TIMEOUT_SECONDS", 5)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=DATABASE_CONN_MAX_AGE,
            conn_health_checks=DATABASE_CONN_HEALTH_CHECKS,
        )
    }
    if DATABASE_PASSWORD:
        DATABASES["default"]["PASSWORD"] = DATABASE_PASSWORD
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT_SECONDS)
        if DATABASE_PGBOUNCER:
            DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
            _options["prepare_threshold"] = None
            _options.pop("server_side_binding", None)
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Daphne's worker threads, other server processes and management commands write
    # concurrently: wait for the lock instead of failing, and take it at BEGIN so that lock
    # upgrades never deadlock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The browser client (clients/js, plain ES modules) is served at /static/tripsage/js/.
STATICFILES_DIRS = [("tripsage/js", BASE_DIR / "clients" / "js")]
# Its development files (node_modules, type checks) are neither listed nor served
# (tripsage.staticfinders).
STATICFILES_FINDERS = [
    "tripsage.staticfinders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the app folders directly when collectstatic has not run (development, tests).
WHITENOISE_USE_FINDERS = True

# --- Channel layer: Redis when REDIS_URL is set (several processes behave as one), otherwise the
# in-process layer (one process only; fine for `make run` and nothing else).
REDIS_URL = env_str("REDIS_URL")
# The password apart from the URL, any characters as they are: written into REDIS_URL,
# URL-escaped, so that every Redis client (layer, throttles, presence, cache) gets it.
REDIS_PASSWORD = env_str("REDIS_PASSWORD", "")
if REDIS_URL and REDIS_PASSWORD:
    REDIS_URL = url_with_password(REDIS_URL, REDIS_PASSWORD)
# Redis Sentinel (docs/deployment.md): with REDIS_SENTINELS ("host:port,host:port,..."), every
# Redis client (channel layer, publisher, presence, throttles and leases, cache) asks the
# Sentinels for the primary named REDIS_SENTINEL_MASTER and follows a failover by itself;
# REDIS_URL then gives only the database number and password (its host is not used).
REDIS_SENTINELS = parse_sentinels(env_str("REDIS_SENTINELS", ""))
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER", "tripsage")
# The Sentinels' own password (their requirepass), when they have one.
REDIS_SENTINEL_PASSWORD = env_str("REDIS_SENTINEL_PASSWORD", "") or None
# A Sentinel that does not answer within this is skipped for the next one.
REDIS_SENTINEL_TIMEOUT_SECONDS = env_float("REDIS_SENTINEL_TIMEOUT_SECONDS", 1.0)
if REDIS_SENTINELS and not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_SENTINELS is set but REDIS_URL is not: set REDIS_URL=redis://[:password@]sentinel/0 "
        "for the database number and password (its host is not used under Sentinel)."
    )
# The service's Redis as a host entry (realtime.redis_clients), which every client is made from.
REDIS_HOST: dict[str, Any] = (
    redis_host(
        REDIS_URL,
        REDIS_SENTINELS,
        REDIS_SENTINEL_MASTER,
        REDIS_SENTINEL_PASSWORD,
        REDIS_SENTINEL_TIMEOUT_SECONDS,
    )
    if REDIS_URL
    else {}
)
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 1000)
CHANNEL_LAYER_CAPACITY = env_int("CHANNEL_LAYER_CAPACITY", 1000)
# Which Redis channel layer: "fanout" (realtime.layers: one subscription per process and group,
# direct delivery to sockets, bounded inboxes, ordered streams), or channels_redis's "pubsub" or
# "core" (plain Channels layers: the same code path, without the extras; events.fanout).
# docs/performance.md has the figures behind the default.
REDIS_CHANNEL_LAYER = env_str("REDIS_CHANNEL_LAYER", "fanout")
# With the fanout layer: the last events of each trip's stream a process keeps while it holds
# members of it, to answer a `resume` from memory (0: always from the log). Each is its encoded
# message; a trip's members come back after a restart within seconds, tens of events at most.
REALTIME_RESUME_FROM_MEMORY_EVENTS = env_int("REALTIME_RESUME_FROM_MEMORY_EVENTS", 200)
if REALTIME_RESUME_FROM_MEMORY_EVENTS < 0:
    raise ImproperlyConfigured(
        f"REALTIME_RESUME_FROM_MEMORY_EVENTS={REALTIME_RESUME_FROM_MEMORY_EVENTS}: 0 or more."
    )
# A publish after commit waits at most this long for Redis; then it is logged and counted
# (tripsage_publish_failures_total) and the sockets catch up from the log (docs/reliability.md).
PUBLISH_TIMEOUT_SECONDS = env_float("PUBLISH_TIMEOUT_SECONDS", 1.0)
_LAYER_BACKENDS = {
    "fanout": "realtime.layers.FanoutChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
if REDIS_URL:
    if REDIS_CHANNEL_LAYER not in _LAYER_BACKENDS:
        raise ImproperlyConfigured(
            f"REDIS_CHANNEL_LAYER={REDIS_CHANNEL_LAYER!r}: use one of {', '.join(_LAYER_BACKENDS)}."
        )
    CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": _LAYER_BACKENDS[REDIS_CHANNEL_LAYER],
            "CONFIG": {
                "hosts": [
                    {
                        **REDIS_HOST,
                        # Explicit, so no client default can race the layer's blocking reads
                        # (channels_redis issue 422) or cap the pool below our connection count.
                        "socket_timeout": None,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "max_connections": REDIS_MAX_CONNECTIONS,
                    }
                ],
                "prefix": env_str("CHANNEL_LAYER_PREFIX", "tripsage"),
                "capacity": CHANNEL_LAYER_CAPACITY,
                "expiry": 60,
            },
        }
    }
    if REDIS_CHANNEL_LAYER == "fanout":
        # What the layer must know of the app, which it does not import (realtime.layers).
        CHANNEL_LAYERS["default"]["CONFIG"].update(
            # The group messages that carry a contiguous per-group `seq` (collaboration's trip
            # events and chat messages), put back in order once per process ...
            ordered_types=("trip.event", "chat.event"),
            # ... after waiting this long for the ones before an early event.
            reorder_wait=env_float("CHANNEL_LAYER_REORDER_WAIT", 0.1),
            # The last events of each trip's stream a process keeps while it has members of it:
            # a `resume` that missed no more is answered from memory, not from the log.
            recent_events=REALTIME_RESUME_FROM_MEMORY_EVENTS,
            recent_types=("trip.event",),
            # Group name -> connection type, the label of tripsage_fanout_latency_seconds,
            # which the layer then measures once per event and process.
            fanout_latency_label="events.groups.connection_type_of",
            # A publish waits at most this long for Redis (events.broadcast).
            publish_timeout=PUBLISH_TIMEOUT_SECONDS,
        )
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- REST API.
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "realtime.rest.error_envelope_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TripSage Realtime API",
    "DESCRIPTION": "REST beside the WebSocket protocol (docs/protocol.md).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI (/api/docs/) and Redoc (/api/redoc/) from drf-spectacular-sidecar's static files,
    # served by whitenoise like ours: no CDN, so the pages work offline and behind a strict proxy.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl off: Swagger UI would otherwise send the schema to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        "persistAuthorization": True,
        "validatorUrl": None,
    },
}

# --- JWT: one pinned algorithm. HS* signs with JWT_SIGNING_KEY, never the Django secret key
# (production requires a strong one of its own); RS*/ES* sign with JWT_PRIVATE_KEY and verify
# with JWT_PUBLIC_KEY (PEM text, or *_FILE paths).
JWT_ALGORITHM = env_str("JWT_ALGORITHM", "HS256")
DEV_JWT_SIGNING_KEY = "dev-only-insecure-jwt-key-do-not-use-in-production"


def _pem(name: str) -> str:
    value = env_str(name)
    if value:
        return value.replace("\\n", "\n")
    path = env_str(f"{name}_FILE")
    if path:
        return Path(path).read_text()
    return ""


if JWT_ALGORITHM.startswith("HS"):
    _JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY", DEV_JWT_SIGNING_KEY)
    _JWT_VERIFYING_KEY = ""
else:
    _JWT_SIGNING_KEY = _pem("JWT_PRIVATE_KEY")
    _JWT_VERIFYING_KEY = _pem("JWT_PUBLIC_KEY")

SIMPLE_JWT = {
    "ALGORITHM": JWT_ALGORITHM,
    "SIGNING_KEY": _JWT_SIGNING_KEY,
    "VERIFYING_KEY": _JWT_VERIFYING_KEY,
    "AUDIENCE": env_str("JWT_AUDIENCE"),
    "ISSUER": env_str("JWT_ISSUER"),
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_LIFETIME_SECONDS", 15 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_REFRESH_LIFETIME_SECONDS", 86400)),
    "LEEWAY": env_int("JWT_LEEWAY_SECONDS", 0),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_TYPE_CLAIM": "token_type",
    "UPDATE_LAST_LOGIN": False,
    "CHECK_USER_IS_ACTIVE": True,
}

# --- Realtime (WebSocket) behaviour. Each constant says why its default is what it is.
# Check every server message against its schema as it is built (protocol.server), so a message
# that drifted from docs/protocol.md fails where it is made; off in production, where it would
# cost a validation per message for a bug the suite already catches.
PROTOCOL_CHECK_SERVER_MESSAGES = env_bool("PROTOCOL_CHECK_SERVER_MESSAGES", DEBUG)
# Browsers send Origin; a socket with an unlisted Origin is refused before accept. "*" allows all.
# PUBLIC_URL's origin always, and any listed besides.
REALTIME_ALLOWED_ORIGINS = _with_public(
    _PUBLIC.origin if _PUBLIC else None,
    "REALTIME_ALLOWED_ORIGINS",
    ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"],
)
# And an origin on the request's own host and port (any scheme; the host must be in ALLOWED_HOSTS),
# as Channels' AllowedHostsOriginValidator: `make run PORT=9000`'s page connects with no setting.
# Off by default once PUBLIC_URL says where users are: production allows what it lists, exactly
# (docs/decisions.md, "Socket origins").
REALTIME_ALLOW_SAME_HOST_ORIGIN = env_bool("REALTIME_ALLOW_SAME_HOST_ORIGIN", _PUBLIC is None)
# The seed's client authenticates in its first message; 10 s covers slow mobile handshakes.
REALTIME_AUTH_TIMEOUT_SECONDS = env_float("REALTIME_AUTH_TIMEOUT_SECONDS", 10.0)
# The seed's 30 s interval: under the common 60 s proxy idle timeouts.
REALTIME_HEARTBEAT_SECONDS = env_float("REALTIME_HEARTBEAT_SECONDS", 30.0)
# Two missed heartbeats plus slack before a silent socket is declared dead.
REALTIME_HEARTBEAT_TIMEOUT_SECONDS = env_float(
    "REALTIME_HEARTBEAT_TIMEOUT_SECONDS", 2 * REALTIME_HEARTBEAT_SECONDS + 10
)
# Each process checks this often that its trip and chat sockets reached the head of their streams
# in the database; a socket still behind the head of the check before catches up from the log.
# So every socket converges within two checks of any lost event (Redis away, frozen, wiped, a
# dropped message) with no further edit by anyone (realtime.convergence, docs/reliability.md).
REALTIME_STREAM_CHECK_SECONDS = env_float("REALTIME_STREAM_CHECK_SECONDS", 5.0)
# Each process re-checks this often (and whenever its Redis subscription comes back) that its
# sockets' users are still active and that no operator asked to close them, in case the message
# saying so was lost (realtime.connections).
REALTIME_REVOCATION_CHECK_SECONDS = env_float("REALTIME_REVOCATION_CHECK_SECONDS", 30.0)
# Time a socket may outlive its access token while the client fetches a new one.
REALTIME_TOKEN_GRACE_SECONDS = env_float("REALTIME_TOKEN_GRACE_SECONDS", 30.0)
# A ping after every this much traffic to a socket: its pong acknowledges what came before.
REALTIME_FLOW_PING_BYTES = env_int("REALTIME_FLOW_PING_BYTES", 64 * 1024)
# A socket further behind than this (sent, not acknowledged) is cut off with 4009: memory per
# slow client stays bounded.
REALTIME_MAX_UNACKED_BYTES = env_int("REALTIME_MAX_UNACKED_BYTES", 1024 * 1024)
# Under daphne, write finished frames straight to the socket when nothing is buffered
# (realtime.direct); off: every frame goes through the ASGI send.
REALTIME_DIRECT_WRITES = env_bool("REALTIME_DIRECT_WRITES", True)
REALTIME_CONNECTION_TYPES = ("trip_collaboration", "chat", "agent_status", "notifications")
_DEFAULT_MAX_MESSAGE_BYTES = env_int("REALTIME_MAX_MESSAGE_BYTES", 64 * 1024)
REALTIME_MAX_MESSAGE_BYTES = {
    kind: env_int(f"REALTIME_MAX_MESSAGE_BYTES_{kind.upper()}", _DEFAULT_MAX_MESSAGE_BYTES)
    for kind in REALTIME_CONNECTION_TYPES
}

# --- Throttling (realtime.throttling; docs/configuration.md). Messages: a token bucket per user and
# connection type holding <burst> messages, refilled at <per minute> per 60 s (the seed's table).
# Heartbeats, pongs and auth.refresh are not counted (auth.refresh has its own bucket, below).
REALTIME_RATE_LIMITS = env_rate_limits(
    "REALTIME_RATE_LIMITS",
    {
        "chat": (120, 20, 60.0),
        "agent_status": (60, 10, 60.0),
        "trip_collaboration": (300, 50, 60.0),
        "notifications": (30, 5, 60.0),
    },
)
# A socket whose refused messages within one window exceed this many times its per-minute limit
# is closed with 4029: it is flooding, not bursting.
REALTIME_FLOOD_FACTOR = env_float("REALTIME_FLOOD_FACTOR", 1.0)
# Sockets one user may hold at once, on all processes together (tabs x connection types).
REALTIME_MAX_CONNECTIONS_PER_USER = env_int("REALTIME_MAX_CONNECTIONS_PER_USER", 20)
# auth.refresh: a bucket per user (all sockets, all processes) holding REALTIME_REFRESH_BURST,
# refilled at REALTIME_REFRESH_PER_MINUTE per minute; apart from the message budget. A client
# refreshes each socket once per token lifetime (15 min), and a page hands a new token to all its
# sockets at once: the burst lets every socket a user may hold take one; the refill, a second
# token (a retry, a switch of tab) within the minute. A flood is refused with no token check.
REALTIME_REFRESH_BURST = env_int("REALTIME_REFRESH_BURST", REALTIME_MAX_CONNECTIONS_PER_USER)
REALTIME_REFRESH_PER_MINUTE = env_int("REALTIME_REFRESH_PER_MINUTE", 20)
# New sockets per minute from one client address (a bucket of that size); behind a proxy, the
# address it vouches for (TRUSTED_PROXIES). Load tests from one address raise it.
REALTIME_CONNECTS_PER_MINUTE_PER_IP = env_int("REALTIME_CONNECTS_PER_MINUTE_PER_IP", 120)
# Admission control (realtime.connect_gate): sockets one process lets open at once (from connect
# to connection.established); the next waits for a place (below), then is refused with 4013 and
# a retry hint. 0: no limit. 32: the members already connected keep their latency through a
# reconnect storm (bench S7: 100 let the storm's work crowd their events, 2.5-5x), at a few per
# cent of the connect rate (S4) against 100 (docs/performance.md, docs/decisions.md).
REALTIME_MAX_OPENING_SOCKETS = env_int("REALTIME_MAX_OPENING_SOCKETS", 32)
# The retry hint of that refusal: the server sends between this and twice this (jittered).
REALTIME_OVERLOAD_RETRY_SECONDS = env_float("REALTIME_OVERLOAD_RETRY_SECONDS", 1.0)
# Before refusing, a connect waits this long for a place, its handshake unanswered (0: refuse at
# once); below daphne's --websocket_connect_timeout (5 s), which rejects a handshake left
# unanswered longer. At most REALTIME_MAX_WAITING_SOCKETS wait; the next is refused at once.
REALTIME_OPENING_WAIT_SECONDS = env_float("REALTIME_OPENING_WAIT_SECONDS", 3.0)
REALTIME_MAX_WAITING_SOCKETS = env_int("REALTIME_MAX_WAITING_SOCKETS", 2000)
if (
    REALTIME_MAX_OPENING_SOCKETS < 0
    or REALTIME_OVERLOAD_RETRY_SECONDS <= 0
    or not 0 <= REALTIME_OPENING_WAIT_SECONDS < 5
    or REALTIME_MAX_WAITING_SOCKETS < 0
):
    raise ImproperlyConfigured(
        f"REALTIME_MAX_OPENING_SOCKETS={REALTIME_MAX_OPENING_SOCKETS} must be 0 (no limit) or "
        f"more, REALTIME_OVERLOAD_RETRY_SECONDS={REALTIME_OVERLOAD_RETRY_SECONDS:g} more than 0, "
        f"REALTIME_OPENING_WAIT_SECONDS={REALTIME_OPENING_WAIT_SECONDS:g} from 0 to less than "
        f"daphne's 5 s handshake timeout, REALTIME_MAX_WAITING_SOCKETS="
        f"{REALTIME_MAX_WAITING_SOCKETS} 0 or more."
    )
# A process renews its connection slots a few times per lease; a dead process's slots expire.
REALTIME_CONNECTION_LEASE_SECONDS = env_float("REALTIME_CONNECTION_LEASE_SECONDS", 60.0)
# Where the limits live: REDIS_URL unless set apart; empty means this process only.
REALTIME_THROTTLE_REDIS_URL = os.environ.get("REALTIME_THROTTLE_REDIS_URL", REDIS_URL) or None
REALTIME_THROTTLE_PREFIX = env_str("CHANNEL_LAYER_PREFIX", "tripsage")
# A check waits at most this long for Redis before limiting in-process instead.
REALTIME_THROTTLE_REDIS_TIMEOUT_SECONDS = env_float("REALTIME_THROTTLE_REDIS_TIMEOUT_SECONDS", 1.0)
# REST (DRF): per user (anonymous: per address) and per address, shared through CACHES.
REST_RATE_USER = env_str("REST_RATE_USER", "600/min")
REST_RATE_IP = env_str("REST_RATE_IP", "1200/min")
# Password attempts per client address, one budget for every way to sign in (the token endpoint,
# the page's sign-in, the admin's and the browsable API's login; realtime.sign_in_limits), right
# passwords included; over it, 429 with the password not checked. 10 a minute leaves a person
# room for typos and a shared office address for its morning, and holds a guesser to 14,400 a
# day per address instead of the 600 a minute REST_RATE_USER alone would allow.
SIGN_IN_RATE = env_str("SIGN_IN_RATE", "10/min")
if not re.fullmatch(r"[0-9]+/[smhd][a-z]*", SIGN_IN_RATE):  # what DRF's throttles can parse
    raise ImproperlyConfigured(
        f"SIGN_IN_RATE={SIGN_IN_RATE!r} is not a rate: write sign-ins per address per period, "
        "like 10/min (s, min, hour or day)."
    )
# The throttles count by REMOTE_ADDR alone, which tripsage.proxies resolved from a trusted
# proxy's X-Forwarded-For (TRUSTED_PROXIES). 0, not DRF's default None, which would count by
# whatever X-Forwarded-For the client sent.
REST_FRAMEWORK["NUM_PROXIES"] = 0
if os.environ.get("NUM_PROXIES"):
    raise ImproperlyConfigured(
        "NUM_PROXIES is no longer read: list your reverse proxy's addresses in TRUSTED_PROXIES "
        "instead (docs/deployment.md), and unset NUM_PROXIES."
    )
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "realtime.rest.UserThrottle",
    "realtime.rest.AddressThrottle",
]
# Throttle counters (and any other cache use): Redis when configured, so every process counts
# into one budget; otherwise this process's memory.
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REALTIME_THROTTLE_PREFIX,
            "OPTIONS": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        }
    }
    if REDIS_SENTINELS:  # the same primary as every other client, found through the Sentinels
        CACHES["default"]["OPTIONS"].update(
            pool_class="realtime.redis_clients.SentinelCachePool",
            **{key: REDIS_HOST[key] for key in ("sentinels", "master_name", "sentinel_kwargs")},
        )
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The security event log (events.security; docs/security-log.md): JSON lines from the logger
# `tripsage.security`, to SECURITY_LOG_FILE (reopened when logrotate moves it) or else stderr,
# apart from the plain log. SECURITY_LOG_LEVEL=WARNING turns it off.
SECURITY_LOG_FILE = env_str("SECURITY_LOG_FILE", "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json_lines": {"()": "events.security.JsonLinesFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "security": (
            {
                "class": "logging.handlers.WatchedFileHandler",
                "filename": SECURITY_LOG_FILE,
                "formatter": "json_lines",
            }
            if SECURITY_LOG_FILE
            else {"class": "logging.StreamHandler", "formatter": "json_lines"}
        ),
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "tripsage.security": {
            "handlers": ["security"],
            "level": env_str("SECURITY_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}

# --- Reverse proxies (tripsage.proxies; docs/deployment.md). The addresses (IPs or CIDR ranges,
# comma-separated) of the proxies in front of the processes: from those peers only, X-Forwarded-For
# gives the client's address and X-Forwarded-Proto the scheme. Empty: trust nobody, so a client
# cannot choose the address its limits are counted against by sending the header itself.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
# The health check answers over plain HTTP from inside the host or container, TLS or not.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Connection metrics (metrics.collector): counters in memory, written every this many
# seconds per process; sessions kept this many days after they end, snapshots this many hours.
METRICS_FLUSH_SECONDS = env_float("METRICS_FLUSH_SECONDS", 5.0)
# An open socket's row is refreshed at most this often (closed sockets are written at once).
METRICS_LIVE_REFRESH_SECONDS = env_float("METRICS_LIVE_REFRESH_SECONDS", 60.0)
METRICS_SESSION_RETENTION_DAYS = env_int("METRICS_SESSION_RETENTION_DAYS", 30)
METRICS_SNAPSHOT_RETENTION_HOURS = env_int("METRICS_SNAPSHOT_RETENTION_HOURS", 24)
# Who may read /metrics (metrics.access; docs/metrics.md): a request with `Authorization: Bearer
# <METRICS_TOKEN>`, or from an address in METRICS_ALLOWED_IPS (IPs or CIDR ranges, comma-separated;
# the client address as TrustedProxyMiddleware resolved it). Either one lets a request in. With
# neither set, /metrics is open here and closed in production (docs/decisions.md).
METRICS_TOKEN = env_token("METRICS_TOKEN", "to read /metrics by address only")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])
parse_networks(  # each entry an address or a range, or start-up stops saying which
    METRICS_ALLOWED_IPS,
    "METRICS_ALLOWED_IPS",
    "10.0.0.5",
    "List the addresses Prometheus scrapes from, comma-separated, or leave it empty.",
)

# --- Collaboration.
# Chat: longest message (characters), messages sent on connect, how long a typing indicator shows
# without renewal, most messages one `resume` replays before answering `resync.required`.
CHAT_MAX_LENGTH = env_int("CHAT_MAX_LENGTH", 4000)
CHAT_HISTORY_LIMIT = env_int("CHAT_HISTORY_LIMIT", 50)
CHAT_TYPING_TTL_SECONDS = env_float("CHAT_TYPING_TTL_SECONDS", 6.0)
CHAT_RESUME_LIMIT = env_int("CHAT_RESUME_LIMIT", 1000)
# Unread notifications sent on connect (the newest; `unread_count` is always exact).
NOTIFICATIONS_ON_CONNECT = env_int("NOTIFICATIONS_ON_CONNECT", 100)
# Events kept per trip for replay; a client further behind gets a fresh snapshot instead.
TRIP_EVENT_RETENTION = env_int("TRIP_EVENT_RETENTION", 10_000)
# Presence entries expire unless renewed, so a dead process's sockets drop out by themselves.
PRESENCE_TTL_SECONDS = env_float("PRESENCE_TTL_SECONDS", 30.0)
PRESENCE_REFRESH_SECONDS = env_float("PRESENCE_REFRESH_SECONDS", 10.0)
# Presence changes within this window go out as one update (a connect storm into one trip).
PRESENCE_COALESCE_SECONDS = env_float("PRESENCE_COALESCE_SECONDS", 0.25)
# ... and that again per this many sockets a process holds on the trip (realtime.presence).
PRESENCE_COALESCE_SOCKETS = env_int("PRESENCE_COALESCE_SOCKETS", 500)
# Presence updates list at most this many collaborators; the count is always exact.
PRESENCE_LIST_LIMIT = env_int("PRESENCE_LIST_LIMIT", 50)
# The editing-indicator lifetime without renewal.
EDITING_TTL_SECONDS = env_float("EDITING_TTL_SECONDS", 30.0)

# --- Agents. The token a deployment's agents send (`Authorization: Service <token>`) to report
# a run's status; empty: service tokens are refused and only staff users may report.
AGENT_SERVICE_TOKEN = env_token("AGENT_SERVICE_TOKEN", "to turn service tokens off")
