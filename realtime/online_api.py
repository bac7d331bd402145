"""`GET /api/trips/online/`: who is on each of my trips right now, read from the presence store.

Here and not in collaboration's REST: presence belongs to the sockets (realtime), which know the
domain apps, never the other way round."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import selectors
from collaboration.apis.common import request_user
from realtime.presence import tracker
from realtime.presence_state import TripPresence

MAX_TRIPS = 200  # one store read each; a list page shows no more


async def _states(trip_ids: list[int]) -> list[TripPresence]:
    presence = tracker()
    return list(await asyncio.gather(*(presence.current(trip_id) for trip_id in trip_ids)))


class TripsOnlineApi(APIView):
    @extend_schema(
        request=None,
        responses=None,
        summary="Who is connected to each of your trips now (newest trips first, at most 200)",
    )
    def get(self, request: Request) -> Response:
        user = request_user(request)
        trip_ids = [m.trip_id for m in selectors.memberships(user=user)[:MAX_TRIPS]]
        # Under daphne a sync view runs in a worker thread; async_to_sync runs the reads on the
        # server's event loop, where the store's Redis client for that loop lives.
        states = async_to_sync(_states)(trip_ids) if trip_ids else []
        body: list[dict[str, Any]] = [
            {"trip_id": trip_id, **state.presence_fields()}
            for trip_id, state in zip(trip_ids, states, strict=True)
        ]
        return Response({"trips": body})
