"""WebSocket URL routes, one per connection type."""

from django.urls import path

from realtime.consumers.agents import AgentStatusConsumer
from realtime.consumers.chat import ChatConsumer
from realtime.consumers.notifications import NotificationConsumer
from realtime.consumers.trips import TripConsumer

# Consumers' as_asgi() returns Any (realtime.consumer_loop), so django-stubs' path()
# takes it without the ignores it once needed.
websocket_urlpatterns = [
    path("ws/trips/<int:trip_id>/", TripConsumer.as_asgi()),
    path("ws/chat/<int:trip_id>/", ChatConsumer.as_asgi()),
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/agent-status/", AgentStatusConsumer.as_asgi()),
]
