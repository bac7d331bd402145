"""REST token refresh: simplejwt's, with a deleted user refused as a 401 in the seed's envelope.

Apart from realtime.rest, which DRF's settings import while rest_framework.views loads.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import exceptions
from rest_framework_simplejwt import views
from rest_framework_simplejwt.serializers import TokenRefreshSerializer


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, with a deleted user refused like a deactivated one: simplejwt 5.5.1
    lets the user lookup's DoesNotExist escape as a 500 (upstream issue 860)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return super().validate(attrs)
        except User.DoesNotExist:
            raise exceptions.AuthenticationFailed(
                "No active account found for this token.", code="user_not_found"
            ) from None


class TokenRefreshView(views.TokenRefreshView):
    """POST /api/auth/token/refresh/: a new access token, or 401 in the seed's envelope."""

    serializer_class = RefreshSerializer
