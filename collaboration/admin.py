"""Admin for trips, members, the event log, conflicts, chat and notifications."""

from typing import Any

from django.contrib import admin

from collaboration.models import ChatMessage, Conflict, Notification, Trip, TripEvent, TripMember


class TripMemberInline(admin.TabularInline):
    model = TripMember
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Trip)
class TripAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "destination", "start_date", "end_date", "version", "seq")
    search_fields = ("name", "destination")
    readonly_fields = ("version", "field_versions", "seq", "log_floor")
    inlines = [TripMemberInline]


@admin.register(Conflict)
class ConflictAdmin(admin.ModelAdmin):
    list_display = ("id", "trip", "field", "status", "proposed_by", "applied_by", "created_at")
    list_filter = ("status", "field", "resolution")
    search_fields = ("trip__name", "proposed_by__username", "applied_by__username")
    raw_id_fields = ("trip", "applied_by", "proposed_by", "resolved_by")
    date_hierarchy = "created_at"


@admin.register(TripEvent)
class TripEventAdmin(admin.ModelAdmin):
    list_display = ("trip", "seq", "type", "field", "version", "actor", "created_at")
    list_filter = ("type",)
    raw_id_fields = ("trip", "actor")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the log is history: never edited by hand


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    """Read-only: chat is written by the service (seq, fan-out), never by hand."""

    list_display = ("id", "trip", "seq", "author", "created_at")
    list_filter = ("trip",)
    search_fields = ("text",)
    raw_id_fields = ("trip", "author")

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "recipient", "kind", "title", "created_at", "read_at")
    list_filter = ("kind",)
    raw_id_fields = ("recipient",)
