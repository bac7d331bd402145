"""Admin: live connections (with a disconnect action that reaches whichever process holds the
socket), past sessions, and the realtime dashboard (metrics.views)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from metrics import services
from metrics.collector import live_processes
from metrics.models import ConnectionSession, LiveConnection

COLUMNS = (
    "connection_id_short",
    "username",
    "connection_type",
    "trip_id",
    "connected_at",
    "last_activity",
    "messages_received",
    "messages_sent",
    "errors",
    "average_latency_ms",
    "process",
)


class _ValuesFilter(admin.SimpleListFilter):
    """The distinct values present (the 100 most recent), as sidebar choices."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = (
            model_admin.get_queryset(request)
            .exclude(**{f"{self.field}__isnull": True})
            .order_by(self.field)
            .values_list(self.field, flat=True)
            .distinct()[:100]
        )
        return [(str(value), str(value)) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class UserFilter(_ValuesFilter):
    title = parameter_name = "user"
    field = "username"


class TripFilter(_ValuesFilter):
    title = parameter_name = "trip"
    field = "trip_id"


class _ReadOnly(admin.ModelAdmin):
    list_display: tuple[str, ...] = COLUMNS
    list_filter: ClassVar[tuple[Any, ...]] = ("connection_type",)
    search_fields = ("username", "connection_id", "=trip_id")
    date_hierarchy = "connected_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="connection")
    def connection_id_short(self, obj: ConnectionSession) -> str:
        return obj.connection_id[:12]


@admin.register(LiveConnection)
class LiveConnectionAdmin(_ReadOnly):
    """Sockets open now on a live process (as of the processes' last flush)."""

    list_filter = ("connection_type", UserFilter, TripFilter, "process")
    actions = ["disconnect"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LiveConnection]:
        return (
            super()
            .get_queryset(request)
            .filter(ended_at__isnull=True, process__in=live_processes())
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_disconnect_permission(self, request: HttpRequest) -> bool:
        """Closing other people's sockets is for superusers, not for every staff viewer."""
        return request.user.is_superuser

    @admin.action(
        description="Disconnect the selected connections (close code 4010)",
        permissions=["disconnect"],
    )
    def disconnect(self, request: HttpRequest, queryset: QuerySet[LiveConnection]) -> None:
        ids = list(queryset.values_list("connection_id", flat=True))
        services.request_disconnect(ids, actor_id=request.user.pk)
        self.message_user(
            request,
            f"Asked the server processes to close {len(ids)} connection(s).",
            messages.SUCCESS,
        )


@admin.register(ConnectionSession)
class ConnectionSessionAdmin(_ReadOnly):
    """Every socket, open or ended, with how it ended (kept METRICS_SESSION_RETENTION_DAYS)."""

    list_display = (*COLUMNS, "ended_at", "close_code", "end_reason")
    list_filter = ("connection_type", UserFilter, TripFilter, "end_reason", "close_code")
