"""Admin pages: the realtime dashboard. Its numbers come from GET /api/metrics/ (staff only),
polled by metrics/static/metrics/dashboard.js; the page itself is only the admin-styled shell."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache


@staff_member_required
@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    """Live connections, messages per minute, latency and errors, refreshed every 5 s."""
    context = {
        **admin.site.each_context(request),
        "title": "Realtime dashboard",
        "metrics_url": "/api/metrics/",
        "refresh_seconds": 5,
    }
    return render(request, "admin/metrics/dashboard.html", context)
