"""The database connections HTTP requests hold: at most HTTP_MAX_CONCURRENT_REQUESTS at once, and
none after a request ends.

Django's ASGI handler runs each request on a thread of its own, which opens a database connection
for it, so without a bound a burst of REST or admin requests holds as many connections as there
are requests in flight. Past the bound, a request waits for its turn (nginx's timeouts still
apply); the health check never waits. And since that thread is never used again, a persistent
connection (CONN_MAX_AGE, which the socket threads want) would outlive its request until the
garbage collector found it: `close_request_connections` closes it when the request finishes.
Sockets are bounded apart: DATABASE_THREADS (events.aio)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.db import connections

Scope = dict[str, Any]

# Paths that touch neither database nor Redis and must answer while the process is busy.
EXEMPT = frozenset({"/healthz"})


class ConcurrencyLimit:
    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.limit)
        return semaphore

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT:
            await self.app(scope, receive, send)
            return
        async with self._semaphore():
            await self.app(scope, receive, send)


def close_request_connections(sender: type, **kwargs: Any) -> None:
    """request_finished: under the ASGI handler, close the request's database connections (its
    thread is not used again). Other handlers (the test client, WSGI) keep Django's rules."""
    if isinstance(sender, type) and issubclass(sender, ASGIHandler):
        for connection in connections.all(initialized_only=True):
            connection.close()
