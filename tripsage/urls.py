"""HTTP routes: admin, the REST API, its OpenAPI schema, Prometheus metrics."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

from collaboration import apis


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
    path("api/me/", apis.MeApi.as_view(), name="me"),
    path("api/trips/", apis.TripListApi.as_view(), name="trips"),
    path("api/trips/<int:trip_id>/", apis.TripDetailApi.as_view(), name="trip"),
    path("api/trips/<int:trip_id>/members/", apis.TripMembersApi.as_view(), name="trip-members"),
    path(
        "api/trips/<int:trip_id>/members/<int:user_id>/",
        apis.TripMemberApi.as_view(),
        name="trip-member",
    ),
    path("api/trips/<int:trip_id>/events/", apis.TripEventsApi.as_view(), name="trip-events"),
    path(
        "api/trips/<int:trip_id>/conflicts/", apis.TripConflictsApi.as_view(), name="trip-conflicts"
    ),
    path(
        "api/trips/<int:trip_id>/conflicts/<int:conflict_id>/resolve/",
        apis.TripConflictResolveApi.as_view(),
        name="trip-conflict-resolve",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("django_prometheus.urls")),
]
