"""REST for trips: list, create, read, change fields (with If-Match), the event log and the
history of field changes."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import fields, payloads, selectors
from collaboration.apis.common import MAX_SEQ, int_param, raise_for, request_user
from collaboration.errors import CollaborationError
from collaboration.models import Trip, TripEvent
from collaboration.services import trips


class TripFieldsSerializer(serializers.Serializer):
    """Wire values; validated by the same rules as socket edits."""

    name = serializers.JSONField(required=False)
    destination = serializers.JSONField(required=False)
    start_date = serializers.JSONField(required=False)
    end_date = serializers.JSONField(required=False)
    budget = serializers.JSONField(required=False)
    currency = serializers.JSONField(required=False)
    notes = serializers.JSONField(required=False)


def _trip_body(trip: Trip, user: User) -> dict[str, Any]:
    return {
        **payloads.trip_state(trip),
        "role": selectors.trip_role(trip_id=trip.pk, user_id=user.pk),
        "members": selectors.members(trip=trip),
    }


def _etag(trip: Trip) -> str:
    return f'"{trip.version}"'


class PreconditionRequired(exceptions.APIException):
    status_code = 428
    default_detail = "PATCH requires If-Match with the trip version you edited (its ETag)."
    default_code = "precondition_required"


class TripListApi(APIView):
    @extend_schema(
        request=None,
        responses=None,
        summary="The trips you are a member of",
        operation_id="trips_list",
    )
    def get(self, request: Request) -> Response:
        user = request_user(request)
        listed = selectors.trips_for_user(user=user)
        return Response([_trip_body(trip, user) for trip in listed])

    @extend_schema(request=TripFieldsSerializer, responses=None, summary="Create a trip you own")
    def post(self, request: Request) -> Response:
        user = request_user(request)
        data = _fields_from(request)
        if "name" not in data:
            raise exceptions.ValidationError({"name": ["This field is required."]})
        try:
            trip = trips.trip_create(owner=user, **data)
        except CollaborationError as error:
            raise_for(error)
        return Response(_trip_body(trip, user), status=status.HTTP_201_CREATED)


def _fields_from(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"body": ["must be a JSON object"]})
    unknown = set(request.data) - set(fields.EDITABLE_FIELDS)
    if unknown:
        raise exceptions.ValidationError(
            {name: ["not an editable field"] for name in sorted(unknown)}
        )
    return dict(request.data)


MAX_VERSION_DIGITS = 18  # every 18-digit number fits PostgreSQL's bigint


def _base_version(request: Request) -> int:
    header = request.headers.get("If-Match")
    if not header:
        raise PreconditionRequired()
    raw = header.strip().removeprefix("W/").strip('"')
    # ASCII digits only (str.isdigit also takes "²", which int() refuses), and no more than a
    # bigint holds (int() also refuses over 4,300 digits): anything else is no trip version.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_VERSION_DIGITS):
        raise exceptions.ValidationError({"If-Match": ['must be a trip version, e.g. "7"']})
    return int(raw)


class TripDetailApi(APIView):
    @extend_schema(responses=None, summary="A trip, with its versions and `seq`")
    def get(self, request: Request, trip_id: int) -> Response:
        user = request_user(request)
        try:
            trip = selectors.trip_for_member(trip_id=trip_id, user=user)
        except CollaborationError as error:
            raise_for(error)
        return Response(_trip_body(trip, user), headers={"ETag": _etag(trip)})

    @extend_schema(
        request=TripFieldsSerializer,
        responses=None,
        parameters=[
            OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER),
        ],
        summary="Change fields; 409 with the conflicts when someone else changed them first",
    )
    def patch(self, request: Request, trip_id: int) -> Response:
        user = request_user(request)
        data = _fields_from(request)
        if not data:
            raise exceptions.ValidationError({"body": ["name at least one field to change"]})
        base_version = _base_version(request)
        key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        try:
            results = trips.trip_update_fields(
                trip_id=trip_id,
                actor=user,
                idempotency_key=key,
                changes=data,
                base_version=base_version,
            )
        except CollaborationError as error:
            raise_for(error)
        trip = selectors.trip_for_member(trip_id=trip_id, user=user)
        body = {
            **_trip_body(trip, user),
            "results": [result.as_dict() for result in results],
        }
        # A conflict's answer always names its conflict: the None check only narrows the type.
        conflicts = [
            r.conflict_id
            for r in results
            if r.original_status == "conflict" and r.conflict_id is not None
        ]
        if conflicts:
            body["conflicts"] = [
                payloads.conflict_dict(c) for c in selectors.conflicts_with_ids(ids=conflicts)
            ]
            return Response(body, status=status.HTTP_409_CONFLICT, headers={"ETag": _etag(trip)})
        return Response(body, headers={"ETag": _etag(trip)})


class TripEventsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="the last seq you have; default 0"),
            OpenApiParameter("limit", int, description="at most this many (1-1000, default 500)"),
        ],
        responses=None,
        summary="The event log after a seq (410 when it was pruned: fetch the trip again)",
    )
    def get(self, request: Request, trip_id: int) -> Response:
        try:
            selectors.trip_for_member(trip_id=trip_id, user=request_user(request))
        except CollaborationError as error:
            raise_for(error)
        after = int_param(request, "after", 0, 0, None)
        limit = int_param(request, "limit", 500, 1, 1000)
        page = selectors.events_after(trip_id=trip_id, after=after, limit=limit)
        if not page.complete:
            return Response(
                {
                    "resync_required": True,
                    "after": after,
                    "seq": page.current_seq,
                    "detail": "Events after this seq are no longer kept: fetch the trip again.",
                },
                status=status.HTTP_410_GONE,
            )
        last = page.messages[-1]["seq"] if page.messages else after
        return Response(
            {"events": page.messages, "seq": page.current_seq, "has_more": last < page.current_seq}
        )


def _wire_value() -> serializers.CharField:
    return serializers.CharField(allow_null=True, allow_blank=True)


HISTORY_CHANGE = inline_serializer(
    "HistoryChange",
    many=True,
    fields={
        "seq": serializers.IntegerField(min_value=1),
        "version": serializers.IntegerField(min_value=2),
        "field": serializers.ChoiceField(fields.EDITABLE_FIELDS),
        "before": _wire_value(),  # null also when unknown (logged before it was kept)
        "after": _wire_value(),
        "by": inline_serializer(
            "HistoryUser",
            {"id": serializers.IntegerField(), "username": serializers.CharField()},
            allow_null=True,
        ),
        "at": serializers.DateTimeField(),
        "source": serializers.ChoiceField(TripEvent.Source.values),
        "update_id": serializers.UUIDField(allow_null=True),
    },
)


class TripHistoryApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("field", str, enum=fields.EDITABLE_FIELDS, description="one field"),
            OpenApiParameter("before", int, description="older than this seq (the next page)"),
            OpenApiParameter("limit", int, description="1-200, default 50"),
        ],
        responses=inline_serializer(
            "TripHistory",
            {
                "trip_id": serializers.IntegerField(),
                "field": serializers.ChoiceField(fields.EDITABLE_FIELDS, allow_null=True),
                "changes": HISTORY_CHANGE,
                "has_more": serializers.BooleanField(),
                "next_before": serializers.IntegerField(allow_null=True),
                "log_floor": serializers.IntegerField(),
            },
        ),
        summary="Changes of the trip's fields, newest first; `next_before` pages back",
    )
    def get(self, request: Request, trip_id: int) -> Response:
        field = request.query_params.get("field")
        if field is not None and field not in fields.EDITABLE_FIELDS:
            raise exceptions.ValidationError(
                {"field": [f"must be one of {', '.join(fields.EDITABLE_FIELDS)}"]}
            )
        before = None
        if "before" in request.query_params:
            before = int_param(request, "before", 0, 1, MAX_SEQ)
        limit = int_param(request, "limit", 50, 1, 200)
        try:
            page = selectors.field_history(
                trip_id=trip_id, user=request_user(request), field=field, before=before, limit=limit
            )
        except CollaborationError as error:
            raise_for(error)
        return Response(
            {
                "trip_id": trip_id,
                "field": field,
                "changes": page.changes,
                "has_more": page.has_more,
                "next_before": page.changes[-1]["seq"] if page.has_more else None,
                "log_floor": page.log_floor,
            }
        )
