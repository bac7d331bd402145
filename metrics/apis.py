"""GET /api/metrics/: the seed's GlobalMetrics and more, for staff (the dashboard's fetch)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics import selectors


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
