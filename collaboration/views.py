"""HTML pages: the trip editing page. Everything it does goes through the socket protocol and the
REST API, exactly as any other client."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from rest_framework_simplejwt.tokens import AccessToken

import protocol
from protocol import ErrorCode
from protocol.origins import refusal_advice, socket_origin_allowed


@never_cache
def trip_edit(request: HttpRequest, trip_id: int) -> HttpResponse:
    """The page shell. Signed in with a session (the admin's login), it starts connected;
    otherwise it shows a sign-in form that asks the token endpoint. Membership is checked by the
    socket, as for every client."""
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
