"""Channels' ProtocolTypeRouter and URLRouter as tail calls: each returns the application it chose
*called*, its coroutine not awaited, so that no frame of the router's stays alive beside the
socket's for as long as the socket lives (docs/decisions.md, "Tail-call routers").

Channels' routers are `async def` and `return await application(...)`: a coroutine each, with
the scope it was given, for the connection's whole life, and a WebSocket's life is long (bench
S3 measures an idle socket's memory). These route exactly as Channels' do (the same URL
matching, `url_route` args and kwargs, the same errors, raised when the returned awaitable is
awaited, as Channels' are); the server awaits what they return (daphne: asyncio.ensure_future,
which takes any awaitable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn, cast

from channels import routing as channels_routing
from django.urls.exceptions import Resolver404
from django.urls.resolvers import URLPattern

Application = Callable[[Any, Any, Any], Awaitable[Any]]


async def _raise(error: Exception) -> NoReturn:
    """An awaitable that fails as Channels' router coroutine does, when it is run."""
    raise error


class ProtocolTypeRouter:
    """channels.routing.ProtocolTypeRouter: the application of the scope's type."""

    # A plain `__call__` would make asgiref take this for an ASGI 2 (double-callable) app.
    _asgi_single_callable = True

    def __init__(self, application_mapping: Mapping[str, Application]) -> None:
        self.application_mapping = application_mapping

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[Any]:
        application = self.application_mapping.get(scope["type"])
        if application is None:
            return _raise(ValueError(f"No application configured for scope type {scope['type']!r}"))
        return application(scope, receive, send)


class URLRouter(channels_routing.URLRouter):
    """channels.routing.URLRouter (its constructor: the routes' patterns, no include()).

    Nested in another of these, a router that matches nothing raises Resolver404 when called, so
    that the outer one tries its next route, as Channels' outer router does when the inner one's
    coroutine raises it.
    """

    _asgi_single_callable = True

    # Channels' is a coroutine function; this one returns the consumer's coroutine.
    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[Any]:  # type: ignore[override]
        path = scope.get("path_remaining", scope.get("path", None))
        if path is None:
            return _raise(ValueError("No 'path' key in connection scope, cannot route URLs"))

        if "path_remaining" not in scope:
            # The outermost router: the path is under root_path, if there is one.
            root_path = scope.get("root_path", "")
            if root_path and not path.startswith(root_path):
                return _raise(ValueError(f"No route found for path {path!r}."))
            path = path[len(root_path) :]

        path = path.lstrip("/")  # as Django matches
        # Channels' stubs type the routes as patterns or routers; they are patterns (its __init__).
        for route in cast("list[URLPattern]", self.routes):
            try:
                match = route.pattern.match(path)
                if not match:
                    continue
                new_path, args, kwargs = match
                kwargs.update(route.default_args)  # the pattern's defaults
                outer = scope.get("url_route", {})
                routed = dict(
                    scope,
                    path_remaining=new_path,
                    url_route={
                        "args": outer.get("args", ()) + args,
                        "kwargs": {**outer.get("kwargs", {}), **kwargs},
                    },
                )
                application: Application = route.callback
                return application(routed, receive, send)
            except Resolver404:
                continue  # a nested router of these with no route for the rest of the path
        if "path_remaining" in scope:
            raise Resolver404(f"No route found for path {path!r}.")
        return _raise(ValueError(f"No route found for path {path!r}."))
