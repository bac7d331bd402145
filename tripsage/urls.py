"""HTTP routes: admin, the REST API, its OpenAPI schema, Prometheus metrics."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

from collaboration.apis import MeApi


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "service": "TripSage Realtime",
            "token": "POST /api/auth/token/ {username, password}",
            "websocket": '/ws/trips/<trip_id>/ (send {"token": "<access>"} first)',
            "schema": "/api/schema/",
            "admin": "/admin/",
            "metrics": "/metrics",
        }
    )


urlpatterns = [
    path("", index, name="index"),
    path("admin/", admin.site.urls),
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/token/verify/", TokenVerifyView.as_view(), name="token_verify"),
    path("api/me/", MeApi.as_view(), name="me"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("django_prometheus.urls")),
]
