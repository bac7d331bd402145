"""GET /api/metrics/: the seed's GlobalMetrics and more, for staff (the dashboard's fetch); and
GET /api/metrics/connections/<connection_id>/: one socket's ConnectionMetrics."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics import selectors

# protocol.new_id(): uuid4().hex, as connection.established names the socket.
CONNECTION_ID = re.compile(r"[0-9a-f]{32}")


class MetricsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[OpenApiParameter("minutes", int, description="history span, 1-1440 (30)")],
        responses=None,
        summary="Connection metrics across every server process (staff only)",
    )
    def get(self, request: Request) -> Response:
        try:
            minutes = min(1440, max(1, int(request.query_params.get("minutes", 30))))
        except ValueError:
            minutes = 30
        return Response(selectors.global_metrics(history_minutes=minutes))


# The seed's ConnectionMetrics of one socket, from the server's side, and the row's extras. Times
# are milliseconds since the epoch (the seed's Date.now()); latencies milliseconds. For the
# schema only: `errors` cannot be a Serializer class attribute (it is the serializer's own).
CONNECTION_METRICS = inline_serializer(
    name="ConnectionMetrics",
    fields={
        "connectionId": serializers.CharField(),
        "userId": serializers.CharField(allow_null=True, help_text="null once the user is deleted"),
        "connectionType": serializers.CharField(),
        "connectedAt": serializers.IntegerField(),
        "lastActivity": serializers.IntegerField(help_text="the last frame the client sent"),
        "messagesSent": serializers.IntegerField(help_text="frames the server sent"),
        "messagesReceived": serializers.IntegerField(help_text="frames the client sent, token too"),
        "bytesSent": serializers.IntegerField(help_text="UTF-8 bytes of the frames sent"),
        "bytesReceived": serializers.IntegerField(help_text="UTF-8 bytes of the frames received"),
        "errors": serializers.IntegerField(help_text="error envelopes sent"),
        "reconnectAttempts": serializers.IntegerField(help_text="1 if the client resumed on it"),
        "averageLatency": serializers.FloatField(
            allow_null=True, help_text="ms, the server's heartbeat round trips; null before one"
        ),
        "peakLatency": serializers.FloatField(allow_null=True),
        "connectionDrops": serializers.IntegerField(
            help_text="events the channel layer dropped for this socket (its stream repaired them)"
        ),
        "username": serializers.CharField(),
        "tripId": serializers.IntegerField(allow_null=True),
        "process": serializers.CharField(),
        "open": serializers.BooleanField(),
        "updatedAt": serializers.IntegerField(help_text="when its process last wrote these"),
        "endedAt": serializers.IntegerField(allow_null=True),
        "closeCode": serializers.IntegerField(allow_null=True),
        "endReason": serializers.CharField(allow_blank=True),
    },
)


class ConnectionMetricsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "connection_id",
                str,
                OpenApiParameter.PATH,
                pattern=CONNECTION_ID.pattern,
                description="the connection_id of the socket's connection.established",
            )
        ],
        responses=CONNECTION_METRICS,
        summary="One socket's connection metrics (staff only)",
    )
    def get(self, request: Request, connection_id: str) -> Response:
        if not CONNECTION_ID.fullmatch(connection_id):
            hint = "must be 32 lower-case hex digits, as connection.established names it"
            raise exceptions.ValidationError({"connection_id": [hint]})
        found = selectors.connection_metrics(connection_id=connection_id)
        if found is None:
            raise exceptions.NotFound("No such connection.")
        return Response(found)
