"""One task per socket: Channels' consumer loop without its two receiving tasks.

Channels' AsyncConsumer runs `await_many_dispatch`: a task awaiting the server's `receive`, another
awaiting the channel layer, and `asyncio.wait` over both, made anew for each message. An idle
socket holds all of it (three tasks, their coroutines and futures, the wait's callbacks; its
frame also keeps the last dispatched message and its finished task), about 4 KiB of the idle
socket's memory (bench S3, docs/performance.md).

Here the socket's own task awaits the server's `receive()` directly, as a bare ASGI app does.
Messages from our fan-out layer (realtime.layers) make the layer call back as they reach the
socket's inbox, and a short-lived task dispatches them; with any other Channels layer one task
awaits the layer, as in Channels. A lock keeps Channels' guarantee: one handler at a time, in the
order the messages arrived. A fault in a channel message's handler ends the socket as it would
in Channels: it is raised in the socket's own task.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer

from realtime.layers.layer import FanoutChannelLayer


class SingleTaskConsumer(AsyncConsumer):
    """AsyncConsumer with the loop above (asynchronous consumers only, as ours all are)."""

    _turn: asyncio.Lock  # held while a handler runs
    _task: asyncio.Task[Any] | None  # the socket's own task
    _pump: asyncio.Task[None] | None  # dispatching channel messages, while there are any
    _failure: BaseException | None  # what a channel message's handler raised

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self._turn = asyncio.Lock()
        self._task = asyncio.current_task()
        self._pump = None
        self._failure = None
        layer = get_channel_layer(self.channel_layer_alias)
        # None without CHANNEL_LAYERS, as in Channels (whose stubs do not say so).
        self.channel_layer = layer  # type: ignore[assignment]
        if layer is not None:
            self.channel_name = await layer.new_channel()
            if isinstance(layer, FanoutChannelLayer):
                layer.on_message(self.channel_name, self._channel_message)
            else:
                self._pump = asyncio.get_running_loop().create_task(self._receive_channel())
        try:
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
        finally:
            self._task = None  # stopped: channel messages are dispatched no more
            if self._pump is not None:
                self._pump.cancel()

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
