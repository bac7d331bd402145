"""Admin for trips (with each trip's timeline), members, the event log, conflicts, chat and
notifications."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from collaboration import selectors
from collaboration.models import ChatMessage, Conflict, Notification, Trip, TripEvent, TripMember

TIMELINE_PAGE_SIZE = 50


class TripMemberInline(admin.TabularInline):
    model = TripMember
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Trip)
class TripAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "destination", "start_date", "end_date", "version", "seq")
    search_fields = ("name", "destination")
    readonly_fields = ("version", "field_versions", "seq", "log_floor", "timeline")
    inlines = [TripMemberInline]

    def get_urls(self) -> list[URLPattern]:
        timeline = path(
            "<path:object_id>/timeline/",
            self.admin_site.admin_view(self.timeline_view),
            name="collaboration_trip_timeline",
        )
        return [timeline, *super().get_urls()]

    @admin.display(description="Timeline")
    def timeline(self, trip: Trip) -> str:
        if trip.pk is None:
            return "—"
        url = reverse("admin:collaboration_trip_timeline", args=[trip.pk])
        return format_html('<a href="{}">Every logged change, newest first</a>', url)

    def timeline_view(self, request: HttpRequest, object_id: str) -> TemplateResponse:
        """The trip's logged events, newest first and paged: what changed, from what to what,
        by whom, how (edit, merge, resolution) and when. Read-only."""
        trip = self.get_object(request, unquote(object_id))
        if trip is None or not self.has_view_permission(request, trip):
            raise Http404("No such trip.")
        page = Paginator(selectors.trip_timeline(trip_id=trip.pk), TIMELINE_PAGE_SIZE).get_page(
            request.GET.get("page")
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": trip,
            "title": f"Timeline of {trip}",
            "page": page,
            "rows": [_timeline_row(event) for event in page],
            "log_floor": trip.log_floor,
        }
        return TemplateResponse(request, "admin/collaboration/trip/timeline.html", context)


def _timeline_row(event: TripEvent) -> dict[str, Any]:
    """One event as the timeline shows it: `before` and `after` are field values for a change,
    the two contested values (or the one kept) for a conflict, the role for a membership."""
    message = event.message
    before: Any = None
    after: Any = None
    if event.type == "trip.updated":
        before, after = event.before, message["value"]
    elif event.type == "conflict.detected":
        before = message["conflict"]["applied"]["value"]
        after = message["conflict"]["proposed"]["value"]
    elif event.type == "conflict.resolved":
        after = message["conflict"]["resolved_value"]
    elif event.type.startswith("member."):
        after = f"{message['user']['username']}: {message.get('role', 'removed')}"
    return {
        "seq": event.seq,
        "type": event.type,
        "field": event.field,
        "before": before,
        "after": after,
        "by": event.actor,
        "source": event.source,
        "at": event.created_at,
    }


@admin.register(Conflict)
class ConflictAdmin(admin.ModelAdmin):
    list_display = ("id", "trip", "field", "status", "proposed_by", "applied_by", "created_at")
    list_filter = ("status", "field", "resolution")
    search_fields = ("trip__name", "proposed_by__username", "applied_by__username")
    raw_id_fields = ("trip", "applied_by", "proposed_by", "resolved_by")
    date_hierarchy = "created_at"


@admin.register(TripEvent)
class TripEventAdmin(admin.ModelAdmin):
    list_display = ("trip", "seq", "type", "field", "version", "source", "actor", "created_at")
    list_filter = ("type", "source")
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
