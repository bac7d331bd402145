"""WebSocket URL routes, one per connection type."""

from django.urls import path

from realtime.consumers.agents import AgentStatusConsumer
from realtime.consumers.chat import ChatConsumer
from realtime.consumers.notifications import NotificationConsumer
from realtime.consumers.trips import TripConsumer

# django-stubs type path() for HTTP views only, not the ASGI apps Channels routes with it, and
# types-channels wants its own pattern type: each ignore below is that gap, and mypy's
# warn_unused_ignores says when the stubs close it.
websocket_urlpatterns = [
    path("ws/trips/<int:trip_id>/", TripConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/chat/<int:trip_id>/", ChatConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/notifications/", NotificationConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/agent-status/", AgentStatusConsumer.as_asgi()),  # type: ignore[arg-type]
]
