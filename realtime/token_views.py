"""REST tokens: simplejwt's views, with a deleted user refused as a 401 in the seed's envelope,
and each sign-in and refresh, granted or refused, in the security log (events.security).

Apart from realtime.rest, which DRF's settings import while rest_framework.views loads. A failed
sign-in is recorded by realtime.signals (Django's `user_login_failed`, for every login form).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.contrib.auth.models import User
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework_simplejwt import views
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from events import security
from realtime.rest import SignInThrottle


class LoginSerializer(TokenObtainPairSerializer):
    """simplejwt's sign-in, recorded when it succeeds."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        data = super().validate(attrs)
        user_id = getattr(self.user, "pk", None)  # set by a sign-in that succeeded
        security.record(security.Event.LOGIN_SUCCEEDED, user_id=user_id, method="token")
        return data


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, with a deleted user refused like a deactivated one: simplejwt 5.5.1
    lets the user lookup's DoesNotExist escape as a 500 (upstream issue 860)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            data = super().validate(attrs)
        except TokenError:
            security.record(security.Event.TOKEN_REFRESH_FAILED, reason="token_invalid")
            raise
        except exceptions.AuthenticationFailed as error:
            reason = error.get_codes()
            security.record(
                security.Event.TOKEN_REFRESH_FAILED,
                reason=reason if isinstance(reason, str) else "authentication_failed",
            )
            raise
        except User.DoesNotExist:
            security.record(security.Event.TOKEN_REFRESH_FAILED, reason="user_not_found")
            raise exceptions.AuthenticationFailed(
                "No active account found for this token.", code="user_not_found"
            ) from None
        access: Any = data["access"]  # the encoded token, which AccessToken also takes
        user_id = AccessToken(access).get(api_settings.USER_ID_CLAIM)
        security.record(security.Event.TOKEN_REFRESHED, user_id=user_id)
        return data


class TokenObtainPairView(views.TokenObtainPairView):
    """POST /api/auth/token/: an access and a refresh token, or 401 in the seed's envelope; 429
    past the REST throttles or the per-address sign-in budget that every login form shares
    (realtime.sign_in_limits), the password not checked."""

    serializer_class = LoginSerializer

    def get_throttles(self) -> list[BaseThrottle]:
        return [*super().get_throttles(), SignInThrottle()]

    def throttled(self, request: Request, wait: float | None) -> NoReturn:
        try:
            data = request.data
        except exceptions.ParseError:  # still refused for its rate, not its body
            data = None
        username = data.get("username") if isinstance(data, dict) else None
        security.record(
            security.Event.LOGIN_FAILED,
            username=None if username is None else str(username),
            remote_addr=request.META.get("REMOTE_ADDR"),
            reason="rate_limited",
            method="token",
        )
        raise exceptions.Throttled(wait)


class TokenRefreshView(views.TokenRefreshView):
    """POST /api/auth/token/refresh/: a new access token, or 401 in the seed's envelope."""

    serializer_class = RefreshSerializer
