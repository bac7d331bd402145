"""The tail-call routers (tripsage/routing.py) route as Channels' do and keep no frame: each
returns the chosen application's own awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.compatibility import guarantee_single_callable
from channels import routing as channels_routing
from django.urls import path, re_path

from tripsage.proxies import TrustedProxyMiddleware
from tripsage.routing import ProtocolTypeRouter, URLRouter


class Seen:
    """An ASGI app that records the scope it was called with and returns a marker awaitable."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.scopes: list[dict[str, Any]] = []
        self.returned: list[Awaitable[str]] = []

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[str]:
        self.scopes.append(scope)
        awaitable = self._run()
        self.returned.append(awaitable)
        return awaitable

    async def _run(self) -> str:
        return self.name


def routes(
    router: Callable[[list[Any]], Any], trips: Seen, chat: Seen, notes: Seen, inner: Seen
) -> Any:
    """The same table for ours and Channels': converters, a regex with a positional group,
    default kwargs, and a nested router."""
    return router(
        [
            path("ws/trips/<int:trip_id>/", trips),
            re_path(r"^ws/chat/(\d+)/$", chat),
            path("ws/notifications/", notes, {"kind": "all"}),
            path("ws/nested/<slug:area>/", router([path("inner/<int:n>/", inner)])),
        ]
    )


def scope_for(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "websocket", "path": url, "headers": [], **extra}


async def route_both(url: str, **extra: Any) -> tuple[Any, Any]:
    """What ours and Channels' router each do with `url`: (app name, scope) or the exception."""
    outcomes = []
    for router in (URLRouter, channels_routing.URLRouter):
        apps = [Seen(name) for name in ("trips", "chat", "notes", "inner")]
        application = routes(router, *apps)
        try:
            name = await application(scope_for(url, **extra), None, None)
        except Exception as error:
            outcomes.append((type(error), str(error)))
            continue
        (scope,) = [s for app in apps for s in app.scopes]
        outcomes.append((name, scope))
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize(
    "url",
    [
        "/ws/trips/12/",
        "ws/trips/12/",
        "/ws/chat/7/",
        "/ws/notifications/",
        "/ws/nested/north/inner/3/",
    ],
)
async def test_a_route_gets_the_same_application_and_url_route_as_in_channels(url: str) -> None:
    ours, theirs = await route_both(url)
    assert ours == theirs
    assert isinstance(ours[1], dict) and "url_route" in ours[1]


async def test_kwargs_args_and_defaults_reach_the_scope() -> None:
    (_, trips), _ = await route_both("/ws/trips/12/")
    assert trips["url_route"] == {"args": (), "kwargs": {"trip_id": 12}}
    assert trips["path_remaining"] == ""
    (_, chat), _ = await route_both("/ws/chat/7/")
    assert chat["url_route"] == {"args": ("7",), "kwargs": {}}
    (_, notes), _ = await route_both("/ws/notifications/")
    assert notes["url_route"]["kwargs"] == {"kind": "all"}
    (_, inner), _ = await route_both("/ws/nested/north/inner/3/")
    assert inner["url_route"]["kwargs"] == {"area": "north", "n": 3}


async def test_root_path_is_honoured_as_in_channels() -> None:
    ours, theirs = await route_both("/app/ws/trips/5/", root_path="/app")
    assert ours == theirs and ours[0] == "trips"
    ours, theirs = await route_both("/elsewhere/ws/trips/5/", root_path="/app")
    assert ours == theirs == (ValueError, "No route found for path '/elsewhere/ws/trips/5/'.")


@pytest.mark.parametrize(
    "url", ["/ws/nowhere/", "/ws/trips/abc/", "/ws/nested/north/other/", "/ws/nested/north/"]
)
async def test_no_route_is_the_same_value_error_as_in_channels_when_awaited(url: str) -> None:
    application = routes(URLRouter, *(Seen(n) for n in ("trips", "chat", "notes", "inner")))
    failing = application(scope_for(url), None, None)  # nothing raised yet: as Channels' call
    with pytest.raises(ValueError, match="No route found for path"):
        await failing
    ours, theirs = await route_both(url)
    assert ours == theirs


async def test_a_scope_without_a_path_is_the_same_error_as_in_channels() -> None:
    for router in (URLRouter, channels_routing.URLRouter):
        with pytest.raises(ValueError, match="No 'path' key in connection scope"):
            await router([path("x/", Seen("x"))])({"type": "websocket"}, None, None)


async def test_the_routers_return_the_applications_awaitable_and_keep_no_frame() -> None:
    trips = Seen("trips")
    http = Seen("http")
    application = TrustedProxyMiddleware(
        ProtocolTypeRouter({"http": http, "websocket": URLRouter([path("ws/<int:n>/", trips)])}),
        [],
    )
    returned = application(scope_for("/ws/1/"), None, None)
    assert returned is trips.returned[0]  # no coroutine of a router's in between
    assert await returned == "trips"
    returned = application({"type": "http", "path": "/api/", "headers": []}, None, None)
    assert returned is http.returned[0]
    assert await returned == "http"
    assert http.scopes[0]["path"] == "/api/"  # http passes through, unrouted by URL


async def test_protocol_type_router_dispatches_by_type_and_refuses_others_as_channels() -> None:
    mapping = {"http": Seen("http"), "websocket": Seen("websocket")}
    assert await ProtocolTypeRouter(mapping)({"type": "http"}, None, None) == "http"
    assert await ProtocolTypeRouter(mapping)({"type": "websocket"}, None, None) == "websocket"
    for router in (ProtocolTypeRouter, channels_routing.ProtocolTypeRouter):
        with pytest.raises(ValueError, match="No application configured for scope type 'lifespan'"):
            await router(mapping)({"type": "lifespan"}, None, None)


def test_servers_call_them_as_asgi_3_applications() -> None:
    """asgiref (daphne, the test communicators) takes a plain `__call__` for an ASGI 2 app unless
    told: these are single-callable, and daphne's keyword call reaches them."""
    for application in (
        TrustedProxyMiddleware(Seen("x"), []),
        ProtocolTypeRouter({}),
        URLRouter([]),
    ):
        assert guarantee_single_callable(application) is application
    inner = Seen("x")
    returned = TrustedProxyMiddleware(inner, [])(scope=scope_for("/"), receive=None, send=None)
    assert asyncio.run(returned) == "x"
