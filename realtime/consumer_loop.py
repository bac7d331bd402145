"""One task per socket: Channels' consumer loop without its two receiving tasks.

Channels' AsyncConsumer runs `await_many_dispatch`: a task awaiting the server's `receive`, another
awaiting the channel layer, and `asyncio.wait` over both, made anew for each message. An idle
socket holds all of it (three tasks, their coroutines and futures, the wait's callbacks; its
frame also keeps the last dispatched message and its finished task), about 4 KiB of the idle
socket's memory (bench S3, docs/performance.md).

Here the socket's own task awaits the server's `receive()` directly, as a bare ASGI app does.
Messages from our fan-out layer (realtime.layers) make the layer call back as they reach the
socket's inbox, and a short-lived task dispatches them; with any other Channels layer one task
awaits the layer, as in Channels. A lock (`Turn`) keeps Channels' guarantee: one handler at a
time, in the order the messages arrived. A fault in a channel message's handler ends the socket
as it would in Channels: it is raised in the socket's own task. One coroutine does all of it, as
every frame waiting there is held by every idle socket: a subclass adds to it with `loop_failed`
and `loop_ended` instead of wrapping `__call__`, and `as_asgi` adds no frame of its own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer

from realtime.layers.layer import FanoutChannelLayer


class Turn:
    """One handler at a time, in the order they asked: asyncio.Lock's behaviour, slotted and
    without the deque a Lock keeps from its first contention on (every socket holds one)."""

    __slots__ = ("held", "waiting")

    def __init__(self) -> None:
        self.held = False
        self.waiting: list[asyncio.Future[None]] | None = None

    async def __aenter__(self) -> None:
        if not self.held:
            self.held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        if self.waiting is None:
            self.waiting = []
        self.waiting.append(waiter)
        try:
            await waiter  # the turn is handed over: `held` stays True
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._hand_on()  # handed the turn, then cancelled: the next one takes it
            elif self.waiting is not None and waiter in self.waiting:
                self.waiting.remove(waiter)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._hand_on()

    def _hand_on(self) -> None:
        while self.waiting:
            waiter = self.waiting.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
        else:
            self.held = False
        if not self.waiting:
            self.waiting = None


class SingleTaskConsumer(AsyncConsumer):
    """AsyncConsumer with the loop above (asynchronous consumers only, as ours all are)."""

    _turn: Turn  # held while a handler runs
    _task: asyncio.Task[Any] | None  # the socket's own task
    _pump: asyncio.Task[None] | None  # dispatching channel messages, while there are any
    _failure: BaseException | None  # what a channel message's handler raised

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Any:
        """Channels' `as_asgi`, except that the application returns the consumer's coroutine
        instead of awaiting it in a coroutine of its own: one frame fewer for every socket."""

        def app(scope: Any, receive: Any, send: Any) -> Awaitable[None]:
            return cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        del scope  # the consumer may put a smaller one in its place once open
        self.base_send = send
        self._turn = Turn()
        self._task = asyncio.current_task()
        self._pump = None
        self._failure = None
        try:
            layer = get_channel_layer(self.channel_layer_alias)
            # None without CHANNEL_LAYERS, as in Channels (whose stubs do not say so).
            self.channel_layer = layer  # type: ignore[assignment]
            if layer is not None:
                self.channel_name = await layer.new_channel()
                if isinstance(layer, FanoutChannelLayer):
                    layer.on_message(self.channel_name, self._channel_message)
                else:
                    self._pump = asyncio.get_running_loop().create_task(self._receive_channel())
            while True:
                try:
                    message = await receive()
                    async with self._turn:
                        await self.dispatch(message)
                except asyncio.CancelledError:
                    if self._failure is None:
                        raise
                    raise self._failure from None
        except StopConsumer:
            pass
        except Exception as error:
            await self.loop_failed(error)
        finally:
            self._task = None  # stopped: channel messages are dispatched no more
            if self._pump is not None:
                self._pump.cancel()
            await self.loop_ended()

    async def loop_failed(self, error: Exception) -> None:
        """A fault that escaped every handler: Channels lets it end the application."""
        raise error

    async def loop_ended(self) -> None:
        """Whatever ended the loop (the client's close, a fault, a cancellation)."""

    def _channel_message(self) -> None:
        """The layer put a message in this socket's inbox: dispatch it (and any after it)."""
        if self._pump is None and self._task is not None:
            self._pump = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        layer = self.channel_layer
        assert isinstance(layer, FanoutChannelLayer)
        try:
            while self._failure is None:
                message = layer.receive_nowait(self.channel_name)
                if message is None:
                    return
                async with self._turn:
                    await self._dispatch_or_fail(message)
        finally:
            # Synchronously with the last look at the inbox: a message after it starts another.
            self._pump = None

    async def _receive_channel(self) -> None:
        """Another Channels layer: one task awaits it for the socket's whole life."""
        assert self.channel_layer is not None
        while self._failure is None:
            try:
                message = await self.channel_layer.receive(self.channel_name)
            except Exception as error:  # the layer failed (Redis away): the socket ends
                async with self._turn:
                    self._fail(error)
                return
            async with self._turn:
                await self._dispatch_or_fail(message)

    async def _dispatch_or_fail(self, message: dict[str, Any]) -> None:
        try:
            await self.dispatch(message)
        except (Exception, StopConsumer) as error:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        """End the socket with `error`, raised in its own task. Called holding the turn, so
        that task is receiving (or waiting for the turn), never inside a handler."""
        task = self._task
        if task is not None and self._failure is None:
            self._failure = error
            task.cancel()
