"""WebSocket URL routes, one per connection type."""

from django.urls import path

from realtime.consumers.trips import TripConsumer

websocket_urlpatterns = [
    path("ws/trips/<int:trip_id>/", TripConsumer.as_asgi()),
]
