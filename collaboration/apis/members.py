"""REST for a trip's members: list, add or change a role (owners), remove or leave."""

from __future__ import annotations

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import payloads, selectors
from collaboration.apis.common import raise_for, request_user
from collaboration.errors import CollaborationError, NotFound
from collaboration.models import TripMember
from collaboration.services import members


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=TripMember.Role.choices)


class TripMembersApi(APIView):
    @extend_schema(responses=None, summary="Members and roles")
    def get(self, request: Request, trip_id: int) -> Response:
        try:
            trip = selectors.trip_for_member(trip_id=trip_id, user=request_user(request))
        except CollaborationError as error:
            raise_for(error)
        return Response(selectors.members(trip=trip))

    @extend_schema(request=MemberSerializer, responses=None, summary="Add or change (owner)")
    def post(self, request: Request, trip_id: int) -> Response:
        serializer = MemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actor = request_user(request)
        try:
            # Rights first, then the username: only an owner learns whether it exists (No
            # enumeration, docs/decisions.md).
            selectors.trip_for_owner(trip_id=trip_id, user=actor)
            user = _user(serializer.validated_data["username"])
            member = members.trip_member_set(
                trip_id=trip_id,
                actor=actor,
                user=user,
                role=serializer.validated_data["role"],
            )
        except CollaborationError as error:
            raise_for(error)
        return Response({"user": payloads.user_ref(user), "role": member.role})


class TripMemberApi(APIView):
    @extend_schema(responses=None, summary="Remove a member (owner), or leave")
    def delete(self, request: Request, trip_id: int, user_id: int) -> Response:
        actor = request_user(request)
        try:
            # Rights first, then the user id: to anyone but an owner (or the member leaving),
            # an id that exists and one that does not get the same answer.
            if user_id == actor.pk:
                selectors.trip_for_member(trip_id=trip_id, user=actor)
            else:
                selectors.trip_for_owner(trip_id=trip_id, user=actor)
            user = selectors.user_with_id(user_id=user_id)
            if user is None:
                raise NotFound("No such member.", user_id=user_id)
            members.trip_member_remove(trip_id=trip_id, actor=actor, user=user)
        except CollaborationError as error:
            raise_for(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _user(username: str) -> User:
    user = selectors.active_user(username=username)
    if user is None:
        raise exceptions.ValidationError({"username": ["no active user with this username"]})
    return user
