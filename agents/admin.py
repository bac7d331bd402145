"""Admin for agent runs: to look at; changes go through the services, so subscribers hear of
them (`manage.py agent_status`, or the status endpoint)."""

from django.contrib import admin

from agents.models import AgentRun


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = ("id", "agent", "owner", "trip", "state", "progress", "step", "updated_at")
    list_filter = ("state", "agent")
    search_fields = ("agent", "owner__username", "trip__name", "step")
    raw_id_fields = ("owner", "trip")
    date_hierarchy = "created_at"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
