"""Reference 2, what users build by hand today: a stock Channels consumer that authenticates from
the first message and group_sends every update through channels_redis."""

from __future__ import annotations

import os

# Forced, not defaulted: the harness exports TripSage's settings module for its own app, and
# this reference must run on stock channels_redis, never on TripSage's layer.
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.apps.plain_settings"

import django

django.setup()

import jwt  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402


class RoomConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.room = f"trip-{self.scope['url_route']['kwargs']['trip_id']}"
        self.user_id = None
        await self.accept()

    async def receive_json(self, content: dict, **kwargs: object) -> None:
        if self.user_id is None:
            claims = jwt.decode(content["token"], settings.JWT_SIGNING_KEY, algorithms=["HS256"])
            self.user_id = claims["user_id"]
            await self.channel_layer.group_add(self.room, self.channel_name)
            await self.send_json({"type": "connection.established", "user": self.user_id})
            await self.send_json({"type": "trip.snapshot"})
            return
        if content.get("type") == "trip.update":
            await self.send_json(
                {"type": "ack", "update_id": content["update_id"], "status": "applied"}
            )
            await self.channel_layer.group_send(
                self.room,
                {
                    "type": "room.update",
                    "payload": {
                        "type": "trip.updated",
                        "update_id": content["update_id"],
                        "field": content["field"],
                        "value": content["value"],
                        "by": self.user_id,
                    },
                },
            )

    async def room_update(self, event: dict) -> None:
        await self.send_json(event["payload"])

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/trips/<int:trip_id>/", RoomConsumer.as_asgi())])}
)
