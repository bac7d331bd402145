"""HTTP routes: admin, the REST API, its OpenAPI schema and documentation pages (Swagger UI,
Redoc), the browsable API's login, Prometheus metrics, the health check."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)
from rest_framework_simplejwt.views import TokenVerifyView

from agents import apis as agent_apis
from collaboration import views
from collaboration.apis import chat, conflicts, me, members, notifications, trips
from metrics import access as metrics_access
from metrics import apis as metrics_apis
from metrics import views as metrics_views
from realtime import online_api
from realtime.sign_in_limits import limit_sign_ins
from realtime.token_views import TokenObtainPairView, TokenRefreshView


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "service": "TripSage Realtime",
            "token": "POST /api/auth/token/ {username, password}",
            "websocket": [
                '/ws/trips/<trip_id>/ (send {"token": "<access>"} first)',
                "/ws/chat/<trip_id>/",
                "/ws/agent-status/",
                "/ws/notifications/",
            ],
            "schema": "/api/schema/",
            "docs": ["/api/docs/ (Swagger UI)", "/api/redoc/ (Redoc)"],
            "pages": "/trips/ (your trips; sign in at /trips/sign-in/)",
            "admin": "/admin/",
            "metrics": "/metrics",
        }
    )


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for health checks (docker-compose, load balancers): the process answers HTTP
    through Django. Nothing else is touched: a Redis or database outage must not get every
    process restarted, since each one heals by itself (docs/reliability.md)."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("", index, name="index"),
    path("healthz", healthz, name="healthz"),
    path("admin/realtime/dashboard/", metrics_views.dashboard, name="realtime-dashboard"),
    # Every login form draws from the token endpoint's per-address sign-in budget (ASVS 6.3.4).
    path("admin/login/", limit_sign_ins(admin.site.login)),
    path("admin/", admin.site.urls),
    # The pages (issue 17 item 5): my trips, sign-in and sign-out, who is online, the favicon.
    path("trips/", views.trip_list, name="trip-list"),
    path("trips/sign-in/", limit_sign_ins(views.SignInView.as_view()), name="sign-in"),
    path("trips/sign-out/", views.SignOutView.as_view(), name="sign-out"),
    path("api/trips/online/", online_api.TripsOnlineApi.as_view(), name="trips-online"),
    path("favicon.ico", views.FaviconView.as_view(), name="favicon"),
    path("trips/<int:trip_id>/edit", views.trip_edit, name="trip-edit"),
    path("trips/session-token/", views.session_token, name="session-token"),
    path("trips/sw.js", views.service_worker, name="service-worker"),
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/token/verify/", TokenVerifyView.as_view(), name="token_verify"),
    path("api/me/", me.MeApi.as_view(), name="me"),
    path("api/trips/", trips.TripListApi.as_view(), name="trips"),
    path("api/trips/<int:trip_id>/", trips.TripDetailApi.as_view(), name="trip"),
    path("api/trips/<int:trip_id>/members/", members.TripMembersApi.as_view(), name="trip-members"),
    path(
        "api/trips/<int:trip_id>/members/<int:user_id>/",
        members.TripMemberApi.as_view(),
        name="trip-member",
    ),
    path("api/trips/<int:trip_id>/events/", trips.TripEventsApi.as_view(), name="trip-events"),
    path("api/trips/<int:trip_id>/history/", trips.TripHistoryApi.as_view(), name="trip-history"),
    path(
        "api/trips/<int:trip_id>/conflicts/",
        conflicts.TripConflictsApi.as_view(),
        name="trip-conflicts",
    ),
    path(
        "api/trips/<int:trip_id>/conflicts/<int:conflict_id>/resolve/",
        conflicts.TripConflictResolveApi.as_view(),
        name="trip-conflict-resolve",
    ),
    path("api/agents/runs/", agent_apis.AgentRunListApi.as_view(), name="agent-runs"),
    path("api/agents/runs/<int:run_id>/", agent_apis.AgentRunDetailApi.as_view(), name="agent-run"),
    path(
        "api/agents/runs/<int:run_id>/cancel/",
        agent_apis.AgentRunCancelApi.as_view(),
        name="agent-run-cancel",
    ),
    path(
        "api/agents/runs/<int:run_id>/status/",
        agent_apis.AgentRunStatusApi.as_view(),
        name="agent-run-status",
    ),
    path("api/trips/<int:trip_id>/chat/", chat.TripChatApi.as_view(), name="trip-chat"),
    path("api/notifications/", notifications.NotificationsApi.as_view(), name="notifications"),
    path(
        "api/notifications/unread-count/",
        notifications.NotificationUnreadCountApi.as_view(),
        name="notifications-unread-count",
    ),
    path(
        "api/notifications/<int:notification_id>/read/",
        notifications.NotificationReadApi.as_view(),
        name="notification-read",
    ),
    path(
        "api/notifications/read-all/",
        notifications.NotificationReadAllApi.as_view(),
        name="notifications-read-all",
    ),
    path("api/metrics/", metrics_apis.MetricsApi.as_view(), name="metrics-api"),
    path(
        "api/metrics/connections/<str:connection_id>/",
        metrics_apis.ConnectionMetricsApi.as_view(),
        name="connection-metrics-api",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # API documentation, from drf-spectacular-sidecar's static files (no CDN), and the login
    # of DRF's browsable API (its pages link to it).
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="redoc",
    ),
    path(
        "api-auth/login/",
        limit_sign_ins(auth_views.LoginView.as_view(template_name="rest_framework/login.html")),
    ),
    path("api-auth/", include("rest_framework.urls")),
    # This process's Prometheus registry, for METRICS_TOKEN / METRICS_ALLOWED_IPS (metrics.access).
    path("metrics", metrics_access.prometheus_metrics, name="prometheus-django-metrics"),
]
