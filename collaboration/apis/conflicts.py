"""REST for a trip's conflicts: list them, resolve one."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import payloads, selectors
from collaboration.apis.common import raise_for, request_user
from collaboration.errors import CollaborationError
from collaboration.models import Conflict
from collaboration.services import conflicts


class TripConflictsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=["open", "resolved"])],
        responses=None,
        summary="Conflicts on the trip",
    )
    def get(self, request: Request, trip_id: int) -> Response:
        try:
            trip = selectors.trip_for_member(trip_id=trip_id, user=request_user(request))
        except CollaborationError as error:
            raise_for(error)
        wanted = request.query_params.get("status")
        if wanted not in (None, "open", "resolved"):
            raise exceptions.ValidationError({"status": ["must be open or resolved"]})
        return Response(
            [payloads.conflict_dict(c) for c in selectors.conflicts(trip=trip, status=wanted)]
        )


class ResolveSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=Conflict.Choice.choices)
    value = serializers.JSONField(required=False)
    update_id = serializers.UUIDField(required=False)


class TripConflictResolveApi(APIView):
    @extend_schema(request=ResolveSerializer, responses=None, summary="Resolve a conflict")
    def post(self, request: Request, trip_id: int, conflict_id: int) -> Response:
        serializer = ResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assert isinstance(request.data, dict)  # the serializer refuses a body that is not one
        data = serializer.validated_data
        if (data["choice"] == "value") != ("value" in request.data):
            raise exceptions.ValidationError(
                {"value": ["required with choice 'value' and not allowed otherwise"]}
            )
        try:
            result = conflicts.conflict_resolve(
                trip_id=trip_id,
                conflict_id=conflict_id,
                actor=request_user(request),
                choice=data["choice"],
                value=request.data.get("value"),
                update_id=data.get("update_id"),
            )
        except CollaborationError as error:
            raise_for(error)
        conflict = selectors.conflict(conflict_id=conflict_id)
        return Response({"result": result.as_dict(), "conflict": payloads.conflict_dict(conflict)})
