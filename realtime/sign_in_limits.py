"""Sign-in limits for the login forms (the page's, the admin's, the browsable API's): the token
endpoint's per-address sign-in budget (realtime.rest.SignInThrottle), so that guessing on a form
is no cheaper than guessing on the API (docs/decisions.md, "Sign-in limits")."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render

from events import security
from realtime.rest import SignInThrottle

View = Callable[..., HttpResponseBase]


def limit_sign_ins(view: View) -> View:
    """`view` with its POSTs counted against the address's sign-in budget; over it, 429 with a
    page that says how long to wait (and Retry-After), before any password is checked. Showing
    the form (GET) is never limited."""

    @functools.wraps(view)
    def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        throttle = SignInThrottle()
        if throttle.allow_request(request, view):
            return view(request, *args, **kwargs)
        security.record(
            security.Event.LOGIN_FAILED,
            username=str(request.POST.get("username", "")),
            remote_addr=request.META.get("REMOTE_ADDR"),
            reason="rate_limited",
            method="session",
        )
        retry_after = max(1, math.ceil(throttle.wait() or 0))
        response = render(request, "sign_in_limited.html", {"retry_after": retry_after}, status=429)
        response["Retry-After"] = str(retry_after)
        response["Cache-Control"] = "no-store"
        return response

    return limited
