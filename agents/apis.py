"""REST endpoints for agent runs; the status endpoint is how a deployment's agents report."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from agents import selectors, services
from agents.models import AgentRun
from agents.payloads import run_payload
from collaboration.apis.common import raise_for, request_user
from collaboration.errors import CollaborationError


class AgentService:
    """Who a request with the deployment's service token is: the agents, not a user."""

    pk = id = "agent-service"  # REST throttling counts every service request as one client
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def get_username(self) -> str:
        return "agent-service"

    def __str__(self) -> str:
        return "agent-service"


AGENT_SERVICE = AgentService()


class ServiceTokenAuthentication(BaseAuthentication):
    """`Authorization: Service <AGENT_SERVICE_TOKEN>`. With the setting empty, service tokens
    are refused: the only callers then are staff users."""

    keyword = b"service"

    def authenticate(self, request: Request) -> tuple[AgentService, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None  # not ours: the other authentication classes decide
        configured = settings.AGENT_SERVICE_TOKEN
        if not configured:
            raise _service_failure(
                "Service tokens are disabled on this server: set AGENT_SERVICE_TOKEN to enable "
                "them, or call as a staff user.",
                "service_tokens_disabled",
            )
        if len(parts) != 2:
            raise _service_failure(
                "Send `Authorization: Service <token>`, one token without spaces.", "malformed"
            )
        if not hmac.compare_digest(parts[1], configured.encode("utf-8")):
            raise _service_failure("Invalid service token.", "invalid_service_token")
        return AGENT_SERVICE, None

    def authenticate_header(self, request: Request) -> str:
        return 'Service realm="api"'


def _service_failure(message: str, reason: str) -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed({"detail": message, "token_type": "service"}, reason)


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "agents.apis.ServiceTokenAuthentication"
    name = "agentServiceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Service <AGENT_SERVICE_TOKEN>`",
        }


class IsStaffOrAgentService(BasePermission):
    message = "Only staff users and the agent service may report an agent run's status."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is AGENT_SERVICE:
            return True
        return bool(user and user.is_authenticated and user.is_staff)


def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object; a field we do not know is refused, never silently ignored."""
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"body": ["must be a JSON object"]})
    unknown = set(request.data) - allowed
    if unknown:
        raise exceptions.ValidationError({name: ["unknown field"] for name in sorted(unknown)})
    return request.data


class RunCreateSerializer(serializers.Serializer):
    agent = serializers.CharField()
    trip_id = serializers.IntegerField(min_value=1, required=False, allow_null=True)


class RunStatusSerializer(serializers.Serializer):
    """Types only: the rules (bounds, transitions) are the service's."""

    state = serializers.ChoiceField(choices=AgentRun.State.choices, required=False)
    progress = serializers.IntegerField(required=False)
    step = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    message = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class AgentRunListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=AgentRun.State.values)],
        responses=None,
        summary="Your agent runs and those of your trips, newest first (at most 100)",
        operation_id="agent_runs_list",
    )
    def get(self, request: Request) -> Response:
        state = request.query_params.get("state")
        if state is not None and state not in AgentRun.State.values:
            raise exceptions.ValidationError(
                {"state": [f"must be one of {', '.join(AgentRun.State.values)}"]}
            )
        runs = selectors.runs_for(user=request_user(request), state=state)
        return Response([run_payload(run) for run in runs])

    @extend_schema(request=RunCreateSerializer, responses=None, summary="Start a run (queued)")
    def post(self, request: Request) -> Response:
        serializer = RunCreateSerializer(data=_body(request, {"agent", "trip_id"}))
        serializer.is_valid(raise_exception=True)
        try:
            run = services.agent_run_create(
                owner=request_user(request),
                agent=serializer.validated_data["agent"],
                trip_id=serializer.validated_data.get("trip_id"),
            )
        except CollaborationError as error:
            raise_for(error)
        return Response(run_payload(run), status=status.HTTP_201_CREATED)


class AgentRunDetailApi(APIView):
    @extend_schema(responses=None, summary="One agent run you can see")
    def get(self, request: Request, run_id: int) -> Response:
        try:
            run = selectors.run_for_viewer(run_id=run_id, user=request_user(request))
        except CollaborationError as error:
            raise_for(error)
        return Response(run_payload(run))


class AgentRunCancelApi(APIView):
    @extend_schema(request=None, responses=None, summary="Cancel a run you own")
    def post(self, request: Request, run_id: int) -> Response:
        try:
            run = services.agent_run_cancel(run_id=run_id, actor=request_user(request))
        except CollaborationError as error:
            raise_for(error)
        return Response(run_payload(run))


class AgentRunStatusApi(APIView):
    """For the deployment's agents: `Authorization: Service <token>`, or a staff user."""

    authentication_classes = [
        JWTAuthentication,
        ServiceTokenAuthentication,
        SessionAuthentication,
    ]
    permission_classes = [IsStaffOrAgentService]

    @extend_schema(
        request=RunStatusSerializer,
        responses=None,
        summary="Report a run's state, progress, step or message (agent service or staff)",
    )
    def post(self, request: Request, run_id: int) -> Response:
        serializer = RunStatusSerializer(
            data=_body(request, {"state", "progress", "step", "message"})
        )
        serializer.is_valid(raise_exception=True)
        try:
            run = services.agent_run_update(run_id=run_id, **serializer.validated_data)
        except CollaborationError as error:
            raise_for(error)
        return Response(run_payload(run))
