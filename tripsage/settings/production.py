"""Production settings: secrets and hosts come from the environment, with no defaults."""

from __future__ import annotations

from tripsage.env import env_bool, env_int, env_list, env_str
from tripsage.settings.base import *  # noqa: F403
from tripsage.settings.base import JWT_ALGORITHM, SIMPLE_JWT

SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=True)
DEBUG = False
env_str("ALLOWED_HOSTS", required=True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
env_str("DATABASE_URL", required=True)
env_str("REDIS_URL", required=True)

if JWT_ALGORITHM.startswith("HS"):
    SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": env_str("JWT_SIGNING_KEY", SECRET_KEY)}
elif not (SIMPLE_JWT["SIGNING_KEY"] and SIMPLE_JWT["VERIFYING_KEY"]):
    env_str("JWT_PRIVATE_KEY", required=True)
    env_str("JWT_PUBLIC_KEY", required=True)

# Browsers on the deployment's own hosts, over TLS, unless a list is given.
REALTIME_ALLOWED_ORIGINS = env_list(
    "REALTIME_ALLOWED_ORIGINS", [f"https://{host}" for host in ALLOWED_HOSTS if host != "*"]
)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
WHITENOISE_USE_FINDERS = False
# Off unless asked for by name: DJANGO_DEBUG in base.py must not turn the schema check on here.
PROTOCOL_CHECK_SERVER_MESSAGES = env_bool("PROTOCOL_CHECK_SERVER_MESSAGES", False)
