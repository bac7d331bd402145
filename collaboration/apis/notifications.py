"""REST for the user's notifications: pages, the unread count, marking read."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import selectors
from collaboration.apis.common import int_param, request_user
from collaboration.services import notifications


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
        user = request_user(request)
        unread_only = request.query_params.get("unread", "").lower() in ("1", "true", "yes")
        before = (
            int_param(request, "before", -1, 1, None) if "before" in request.query_params else None
        )
        limit = int_param(request, "limit", 50, 1, 200)
        page, has_more = selectors.notifications_for(
            user=user, unread_only=unread_only, before=before, limit=limit
        )
        return Response(
            {
                "notifications": page,
                "unread_count": selectors.unread_count(user=user),
                "has_more": has_more,
                "next_before": page[-1]["id"] if page and has_more else None,
            }
        )


class NotificationUnreadCountApi(APIView):
    @extend_schema(responses=None, summary="How many notifications are unread")
    def get(self, request: Request) -> Response:
        return Response({"unread_count": selectors.unread_count(user=request_user(request))})


class NotificationReadApi(APIView):
    @extend_schema(request=None, responses=None, summary="Mark one notification read")
    def post(self, request: Request, notification_id: int) -> Response:
        user = request_user(request)
        if not selectors.is_own_notification(user=user, notification_id=notification_id):
            raise exceptions.NotFound("No such notification.")
        changed, count = notifications.notification_read(user=user, ids=[notification_id])
        return Response({"ids": changed, "unread_count": count})


class NotificationReadAllApi(APIView):
    @extend_schema(request=None, responses=None, summary="Mark all notifications read")
    def post(self, request: Request) -> Response:
        changed, count = notifications.notification_read(user=request_user(request))
        return Response({"ids": changed, "unread_count": count})
