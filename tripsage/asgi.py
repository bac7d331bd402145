"""ASGI entry point: the trusted-proxy middleware around everything, then HTTP through Django and
WebSockets through the auth middleware to consumers."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tripsage.settings.base")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.auth import JWTAuthMiddleware  # noqa: E402
from realtime.checks import require_channel_layer  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from tripsage.proxies import TrustedProxyMiddleware  # noqa: E402

require_channel_layer()

# Everything loaded so far lives as long as the process: keep it out of the collector's full
# passes, whose pauses grow with the heap and showed as p99 spikes in fan-out (bench S2).
gc.collect()
gc.freeze()

# Outermost: nothing below sees a client address or scheme a trusted proxy did not vouch for.
application = TrustedProxyMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            # The stubs' gap noted in realtime.routing: Django's URLPattern is what URLRouter takes.
            "websocket": JWTAuthMiddleware(URLRouter(websocket_urlpatterns)),  # type: ignore[arg-type]
        }
    )
)
