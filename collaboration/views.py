"""HTML pages: my trips, sign-in and sign-out, the trip editing page. Everything they change goes
through the socket protocol and the REST API, exactly as any other client."""

from __future__ import annotations

from typing import cast

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.generic import RedirectView
from rest_framework_simplejwt.tokens import AccessToken

import protocol
from collaboration import selectors
from collaboration.models import TripMember
from protocol import ErrorCode
from protocol.origins import refusal_advice, socket_origin_allowed


@never_cache
def trip_edit(request: HttpRequest, trip_id: int) -> HttpResponse:
    """The page shell. Signed in with a session (the admin's login), it starts connected;
    otherwise it shows a sign-in form that asks the token endpoint. Membership is checked by the
    socket, as for every client; a session's non-member gets a page that says so, with nothing
    to edit."""
    if request.user.is_authenticated and (
        selectors.trip_role(trip_id=trip_id, user_id=request.user.pk) is None
    ):
        # The same answer for "no such trip" and "not a member", as the socket gives.
        return render(request, "collaboration/not_member.html", {"trip_id": trip_id}, status=403)
    return render(
        request,
        "collaboration/trip_edit.html",
        {
            "trip_id": trip_id,
            "session_user": request.user if request.user.is_authenticated else None,
            "origin_refused": page_origin_refused(request),
        },
    )


def page_origin_refused(request: HttpRequest) -> dict[str, str] | None:
    """The page's own origin and what to change, when the socket handshake would refuse it (the
    browser is told only that the handshake failed); None when the page can connect."""
    host = request.get_host()
    origin = f"{request.scheme}://{host}"
    if socket_origin_allowed(origin, host):
        return None
    return {"origin": origin, "advice": refusal_advice(origin)}


def service_worker(request: HttpRequest) -> HttpResponse:
    """The trip page's service worker (docs/client.md, "The trip page offline"). Served under
    /trips/ so that its scope covers /trips/<id>/edit; `no-cache` so that browsers check for a
    new one on every visit instead of keeping an old one for up to a day."""
    response = render(request, "collaboration/sw.js", content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


@never_cache
def session_token(request: HttpRequest) -> JsonResponse:
    """A fresh access token for the session's user (same origin only: no CORS, and a GET that
    changes nothing). The page asks again before its token expires."""
    if not request.user.is_authenticated:
        return JsonResponse(
            protocol.error_message(
                ErrorCode.AUTHENTICATION_FAILED, "Not signed in.", details={"token_type": "jwt"}
            ),
            status=401,
        )
    token = AccessToken.for_user(request.user)
    return JsonResponse({"access": str(token), "expires_at": int(token["exp"])})


@never_cache
@login_required(login_url="sign-in")
def trip_list(request: HttpRequest) -> HttpResponse:
    """My trips with my role on each; creating a trip and inviting someone (owners) go through
    the REST API from the page, and who is online comes from `/api/trips/online/`."""
    return render(
        request,
        "collaboration/trip_list.html",
        {
            "memberships": list(selectors.memberships(user=cast(User, request.user))),  # signed in
            "roles": TripMember.Role.choices,
        },
    )


class SignInView(auth_views.LoginView):
    """Django's session sign-in, then back to where the user was going (my trips by default)."""

    template_name = "collaboration/sign_in.html"
    next_page = "trip-list"  # a URL name: resolve_url turns it into a path
    redirect_authenticated_user = False  # signed in, it still lets one switch user


class SignOutView(auth_views.LogoutView):
    """POST only (Django's LogoutView): ends the session; `next` picks where to go after."""

    next_page = "sign-in"


class FaviconView(RedirectView):
    """/favicon.ico, which browsers ask for on every page, answered by the static SVG."""

    permanent = False

    def get_redirect_url(self, *args: object, **kwargs: object) -> str:
        return static("tripsage/favicon.svg")
