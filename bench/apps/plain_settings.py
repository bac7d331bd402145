"""Reference 2's settings: what a Channels user sets up by hand (channels_redis core layer)."""

import os

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
# The service signs its tokens with a key of their own (tripsage/settings/base.py).
JWT_SIGNING_KEY = os.environ["JWT_SIGNING_KEY"]
INSTALLED_APPS = ["channels"]
ALLOWED_HOSTS = ["*"]
USE_TZ = True
DATABASES: dict = {}
ASGI_APPLICATION = "bench.apps.plain_channels.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                    "socket_timeout": None,
                    "max_connections": 1000,
                }
            ],
            "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", "bench") + "-plain",
        },
    }
}
