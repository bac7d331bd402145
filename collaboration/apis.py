"""REST endpoints for collaboration: the same services as the sockets, so the same rules."""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import fields, payloads, selectors, services
from collaboration.errors import CollaborationError, InvalidChange, NotFound
from collaboration.models import Conflict, TripMember


def raise_for(error: CollaborationError) -> NoReturn:
    """A service's refusal as a DRF exception; the envelope handler gives it the seed's shape."""
    if isinstance(error, InvalidChange):
        raise exceptions.ValidationError({error.field: [error.message]})
    if isinstance(error, NotFound):
        raise exceptions.NotFound(error.message)
    raise exceptions.PermissionDenied(error.message)


class MeApi(APIView):
    """Who the bearer of this token is."""

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "id": serializers.IntegerField(),
                "username": serializers.CharField(),
                "is_staff": serializers.BooleanField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"id": user.pk, "username": user.get_username(), "is_staff": user.is_staff})


class TripFieldsSerializer(serializers.Serializer):
    """Wire values; validated by the same rules as socket edits."""

    name = serializers.JSONField(required=False)
    destination = serializers.JSONField(required=False)
    start_date = serializers.JSONField(required=False)
    end_date = serializers.JSONField(required=False)
    budget = serializers.JSONField(required=False)
    currency = serializers.JSONField(required=False)
    notes = serializers.JSONField(required=False)


def _trip_body(trip: Any, user: Any) -> dict[str, Any]:
    return {
        **payloads.trip_state(trip),
        "role": selectors.trip_role(trip_id=trip.pk, user_id=user.pk),
        "members": selectors.members(trip=trip),
    }


def _etag(trip: Any) -> str:
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
        trips = selectors.trips_for_user(user=request.user)
        return Response([_trip_body(trip, request.user) for trip in trips])

    @extend_schema(request=TripFieldsSerializer, responses=None, summary="Create a trip you own")
    def post(self, request: Request) -> Response:
        data = _fields_from(request)
        if "name" not in data:
            raise exceptions.ValidationError({"name": ["This field is required."]})
        try:
            trip = services.trip_create(owner=request.user, **data)
        except CollaborationError as error:
            raise_for(error)
        return Response(_trip_body(trip, request.user), status=status.HTTP_201_CREATED)


def _fields_from(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"body": ["must be a JSON object"]})
    unknown = set(request.data) - set(fields.EDITABLE_FIELDS)
    if unknown:
        raise exceptions.ValidationError(
            {name: ["not an editable field"] for name in sorted(unknown)}
        )
    return dict(request.data)


class TripDetailApi(APIView):
    @extend_schema(responses=None, summary="A trip, with its versions and `seq`")
    def get(self, request: Request, trip_id: int) -> Response:
        try:
            trip = selectors.trip_for_member(trip_id=trip_id, user=request.user)
        except CollaborationError as error:
            raise_for(error)
        return Response(_trip_body(trip, request.user), headers={"ETag": _etag(trip)})

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
        data = _fields_from(request)
        if not data:
            raise exceptions.ValidationError({"body": ["name at least one field to change"]})
        header = request.headers.get("If-Match")
        if not header:
            raise PreconditionRequired()
        raw = header.strip().removeprefix("W/").strip('"')
        if not raw.isdigit():
            raise exceptions.ValidationError({"If-Match": ['must be a trip version, e.g. "7"']})
        base_version = int(raw)
        key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        try:
            results = services.trip_update_fields(
                trip_id=trip_id,
                actor=request.user,
                idempotency_key=key,
                changes=data,
                base_version=base_version,
            )
        except CollaborationError as error:
            raise_for(error)
        trip = selectors.trip_for_member(trip_id=trip_id, user=request.user)
        body = {
            **_trip_body(trip, request.user),
            "results": [result.as_dict() for result in results],
        }
        conflicts = [r.conflict_id for r in results if r.original_status == "conflict"]
        if conflicts:
            body["conflicts"] = [
                payloads.conflict_dict(c) for c in Conflict.objects.filter(pk__in=conflicts)
            ]
            return Response(body, status=status.HTTP_409_CONFLICT, headers={"ETag": _etag(trip)})
        return Response(body, headers={"ETag": _etag(trip)})


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=TripMember.Role.choices)


class TripMembersApi(APIView):
    @extend_schema(responses=None, summary="Members and roles")
    def get(self, request: Request, trip_id: int) -> Response:
        try:
            trip = selectors.trip_for_member(trip_id=trip_id, user=request.user)
        except CollaborationError as error:
            raise_for(error)
        return Response(selectors.members(trip=trip))

    @extend_schema(request=MemberSerializer, responses=None, summary="Add or change (owner)")
    def post(self, request: Request, trip_id: int) -> Response:
        serializer = MemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = _user(serializer.validated_data["username"])
        try:
            selectors.trip_for_member(trip_id=trip_id, user=request.user)
            member = services.trip_member_set(
                trip_id=trip_id,
                actor=request.user,
                user=user,
                role=serializer.validated_data["role"],
            )
        except CollaborationError as error:
            raise_for(error)
        return Response({"user": payloads.user_ref(user), "role": member.role})


class TripMemberApi(APIView):
    @extend_schema(responses=None, summary="Remove a member (owner), or leave")
    def delete(self, request: Request, trip_id: int, user_id: int) -> Response:
        user = get_user_model().objects.filter(pk=user_id).first()
        try:
            selectors.trip_for_member(trip_id=trip_id, user=request.user)
            if user is None:
                raise NotFound("No such member.", user_id=user_id)
            services.trip_member_remove(trip_id=trip_id, actor=request.user, user=user)
        except CollaborationError as error:
            raise_for(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise exceptions.ValidationError({"username": ["no active user with this username"]})
    return user


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
            selectors.trip_for_member(trip_id=trip_id, user=request.user)
        except CollaborationError as error:
            raise_for(error)
        after = _int_param(request, "after", 0, 0, None)
        limit = _int_param(request, "limit", 500, 1, 1000)
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


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: ["must be a whole number"]}) from None
    if value < low or (high is not None and value > high):
        limit = f"{low}-{high}" if high is not None else f">= {low}"
        raise exceptions.ValidationError({name: [f"must be {limit}"]})
    return value


class TripConflictsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=["open", "resolved"])],
        responses=None,
        summary="Conflicts on the trip",
    )
    def get(self, request: Request, trip_id: int) -> Response:
        try:
            trip = selectors.trip_for_member(trip_id=trip_id, user=request.user)
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
        data = serializer.validated_data
        if (data["choice"] == "value") != ("value" in request.data):
            raise exceptions.ValidationError(
                {"value": ["required with choice 'value' and not allowed otherwise"]}
            )
        try:
            result = services.conflict_resolve(
                trip_id=trip_id,
                conflict_id=conflict_id,
                actor=request.user,
                choice=data["choice"],
                value=request.data.get("value"),
                update_id=data.get("update_id"),
            )
        except CollaborationError as error:
            raise_for(error)
        conflict = Conflict.objects.get(pk=conflict_id)
        return Response({"result": result.as_dict(), "conflict": payloads.conflict_dict(conflict)})


# -- chat ------------------------------------------------------------------------------------


class ChatPostSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False, allow_blank=True, max_length=16_000)
    client_id = serializers.UUIDField(required=False)


class TripChatApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("before", int, description="older than this seq (page backwards)"),
            OpenApiParameter("after", int, description="newer than this seq (catch up)"),
            OpenApiParameter("limit", int, description="1-200, default 50"),
        ],
        responses=None,
        summary="Chat messages, ascending by seq; `next_before`/`next_after` are the cursors",
    )
    def get(self, request: Request, trip_id: int) -> Response:
        before = (
            _int_param(request, "before", -1, 1, None) if "before" in request.query_params else None
        )
        after = (
            _int_param(request, "after", 0, 0, None) if "after" in request.query_params else None
        )
        if before is not None and after is not None:
            raise exceptions.ValidationError({"before": ["use either before or after"]})
        limit = _int_param(request, "limit", 50, 1, 200)
        try:
            page = selectors.chat_page(
                trip_id=trip_id, user=request.user, before=before, after=after, limit=limit
            )
        except CollaborationError as error:
            raise_for(error)
        seqs = [m["seq"] for m in page.messages]
        return Response(
            {
                "messages": page.messages,
                "seq": page.seq,
                "has_more": page.has_more,
                "next_before": seqs[0] if seqs and after is None and page.has_more else None,
                "next_after": seqs[-1] if seqs and after is not None and page.has_more else None,
            }
        )

    @extend_schema(
        request=ChatPostSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        responses=None,
        summary="Post to the chat (a retry with the same client_id or Idempotency-Key posts once)",
    )
    def post(self, request: Request, trip_id: int) -> Response:
        serializer = ChatPostSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client_id = serializer.validated_data.get("client_id")
        key = request.headers.get("Idempotency-Key")
        if client_id is None and key:
            client_id = uuid.uuid5(uuid.NAMESPACE_URL, f"chat-key-{key}")
        try:
            result = services.chat_post(
                trip_id=trip_id,
                author=request.user,
                text=serializer.validated_data["text"],
                client_id=client_id,
            )
        except CollaborationError as error:
            raise_for(error)
        return Response(
            {"message": result.message, "duplicate": result.duplicate},
            status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED,
        )


# -- notifications ---------------------------------------------------------------------------


class NotificationsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("unread", bool, description="only unread ones"),
            OpenApiParameter("before", int, description="older than this id (page backwards)"),
            OpenApiParameter("limit", int, description="1-200, default 50"),
        ],
        responses=None,
        summary="Your notifications, newest first, with the unread count",
    )
    def get(self, request: Request) -> Response:
        unread_only = request.query_params.get("unread", "").lower() in ("1", "true", "yes")
        before = (
            _int_param(request, "before", -1, 1, None) if "before" in request.query_params else None
        )
        limit = _int_param(request, "limit", 50, 1, 200)
        page, has_more = selectors.notifications_for(
            user=request.user, unread_only=unread_only, before=before, limit=limit
        )
        return Response(
            {
                "notifications": page,
                "unread_count": selectors.unread_count(user=request.user),
                "has_more": has_more,
                "next_before": page[-1]["id"] if page and has_more else None,
            }
        )


class NotificationUnreadCountApi(APIView):
    @extend_schema(responses=None, summary="How many notifications are unread")
    def get(self, request: Request) -> Response:
        return Response({"unread_count": selectors.unread_count(user=request.user)})


class NotificationReadApi(APIView):
    @extend_schema(request=None, responses=None, summary="Mark one notification read")
    def post(self, request: Request, notification_id: int) -> Response:
        if not request.user.notifications.filter(pk=notification_id).exists():
            raise exceptions.NotFound("No such notification.")
        changed, count = services.notification_read(user=request.user, ids=[notification_id])
        return Response({"ids": changed, "unread_count": count})


class NotificationReadAllApi(APIView):
    @extend_schema(request=None, responses=None, summary="Mark all notifications read")
    def post(self, request: Request) -> Response:
        changed, count = services.notification_read(user=request.user)
        return Response({"ids": changed, "unread_count": count})
