"""REST for a trip's chat: pages of history, and posting."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import selectors
from collaboration.apis.common import int_param, raise_for, request_user
from collaboration.errors import CollaborationError
from collaboration.services import chat


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
            int_param(request, "before", -1, 1, None) if "before" in request.query_params else None
        )
        after = int_param(request, "after", 0, 0, None) if "after" in request.query_params else None
        if before is not None and after is not None:
            raise exceptions.ValidationError({"before": ["use either before or after"]})
        limit = int_param(request, "limit", 50, 1, 200)
        try:
            page = selectors.chat_page(
                trip_id=trip_id, user=request_user(request), before=before, after=after, limit=limit
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
            result = chat.chat_post(
                trip_id=trip_id,
                author=request_user(request),
                text=serializer.validated_data["text"],
                client_id=client_id,
            )
        except CollaborationError as error:
            raise_for(error)
        return Response(
            {"message": result.message, "duplicate": result.duplicate},
            status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED,
        )
