"""ASGI entry point: the trusted-proxy middleware around everything, then HTTP through Django (a
bounded number of requests at once) and WebSockets through admission control (a bounded number
opening at once) and the auth middleware to consumers."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tripsage.settings.base")

from django.conf import settings
from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from django.core.signals import request_finished  # noqa: E402

from realtime.auth import JWTAuthMiddleware  # noqa: E402
from realtime.checks import require_channel_layer  # noqa: E402
from realtime.connect_gate import ConnectGate  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from tripsage import autobahn_debug, websocket_failures  # noqa: E402
from tripsage.http_limit import ConcurrencyLimit, close_request_connections  # noqa: E402
from tripsage.proxies import TrustedProxyMiddleware  # noqa: E402
from tripsage.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

require_channel_layer()
autobahn_debug.install()  # autobahn's debug log arguments, built only when logged
websocket_failures.install()  # a frame over daphne's 1 MiB is told 1009, not dropped (1006)
request_finished.connect(close_request_connections)

# Everything loaded so far lives as long as the process: keep it out of the collector's full
# passes, whose pauses grow with the heap and showed as p99 spikes in fan-out (bench S2).
gc.collect()
gc.freeze()
# Fewer young collections: a connect storm allocates thousands of objects per socket, and at
# Python's default (700) the collector took about a fifth of the server's CPU (S4).
gc.set_threshold(*settings.GC_THRESHOLDS)

# The routers and the proxy middleware return the next application's coroutine instead of
# awaiting it (tripsage.routing): no frame of theirs lives as long as a socket (bench S3).
# Outermost: nothing below sees a client address or scheme a trusted proxy did not vouch for.
application = TrustedProxyMiddleware(
    ProtocolTypeRouter(
        {
            # Each request holds a database connection while it runs: a bounded number at once.
            "http": ConcurrencyLimit(django_asgi_app, settings.HTTP_MAX_CONCURRENT_REQUESTS),
            # Admission first: over REALTIME_MAX_OPENING_SOCKETS a connect is refused (4013) before
            # any work for it.
            "websocket": ConnectGate(JWTAuthMiddleware(URLRouter(websocket_urlpatterns))),
        }
    )
)
