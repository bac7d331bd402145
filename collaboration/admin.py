"""Admin for trips and members."""

from django.contrib import admin

from collaboration.models import Trip, TripMember


class TripMemberInline(admin.TabularInline):
    model = TripMember
    extra = 0


@admin.register(Trip)
class TripAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "destination", "start_date", "end_date", "version")
    search_fields = ("name", "destination")
    inlines = [TripMemberInline]
