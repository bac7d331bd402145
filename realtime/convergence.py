"""Convergence without a next event: every trip and chat socket ends at the database's `seq`.

Delivery through the channel layer is at most once: a publish after commit may fail (Redis away
or frozen, events.broadcast), a message may be dropped, and Redis may come back empty. A socket's
ordered stream (realtime.streams) fills a gap from the log when the next event reveals it; this
module covers the case where no next event comes.

Each process, every REALTIME_STREAM_CHECK_SECONDS, reads the head `seq` of the trip and chat
streams its sockets follow (one query for all of them). A socket still behind the head read at
the check before, a full interval earlier, missed something: it is sent a `stream.catch_up`
through its own queue, and fills the gap from the log in order with everything else it sends
(never twice, never out of order). Comparing with the previous check, not the current one, leaves
events in flight alone: a healthy process reads no log.

When the channel layer's subscription comes back after losing Redis, the process checks at once
(reading the heads) and again a second later, instead of waiting for the interval.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.db import DatabaseError

from collaboration import selectors
from events.aio import CATCH_UP, db, per_loop
from events.fanout import channel_layer, fanout
from metrics import instruments
from realtime.connections import connections

logger = logging.getLogger(__name__)


class StreamCheck:
    """This process's check of its sockets' streams against the database."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.heads: dict[int, dict[str, int]] = {}  # trip -> stream heads at the last check
        self.soon: asyncio.Event | None = None
        self.listening = False

    def start(self) -> None:
        """Run the check on this loop (idempotent; realtime.consumers.base calls it per socket)."""
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.soon = asyncio.Event()
            self.task = loop.create_task(self._run())
        if not self.listening:
            fanout(channel_layer()).on_resubscribed(self.check_soon)
            self.listening = True

    def check_soon(self) -> None:
        """The channel layer lost Redis and is back: check now rather than at the interval."""
        if self.soon is not None:
            self.soon.set()

    async def _run(self) -> None:
        assert self.soon is not None
        while True:
            try:
                await asyncio.wait_for(self.soon.wait(), settings.REALTIME_STREAM_CHECK_SECONDS)
            except TimeoutError:
                pass
            else:  # Redis is back: compare with the heads read before, and again a second on
                self.soon.clear()
                await self._check_logged()
                await asyncio.sleep(1.0)
            await self._check_logged()

    async def _check_logged(self) -> None:
        try:
            await self.check()
        except DatabaseError as error:  # the database away: the next check tries again
            logger.warning("stream check failed, the database is unavailable: %s", error)
        except Exception:
            logger.exception("stream check failed; retrying next interval")

    async def check(self) -> int:
        """Send `stream.catch_up` to each socket behind the heads read at the previous check;
        then remember the heads read now. Returns how many sockets were behind."""
        followers = [
            consumer
            for consumer in list(connections().by_id.values())
            if getattr(consumer, "stream", None) is not None and not consumer.closing
        ]
        previous = self.heads
        trip_ids = {consumer.trip_id for consumer in followers}
        read = db(selectors.stream_heads, lane=CATCH_UP)
        self.heads = await read(trip_ids=trip_ids) if trip_ids else {}
        behind = 0
        for consumer in followers:
            heads = previous.get(consumer.trip_id)
            if heads is None:
                continue
            target = heads[consumer.stream_column]
            if consumer.stream.last_seq >= target:
                continue
            behind += 1
            instruments.STREAM_CATCH_UPS.labels(consumer.connection_type).inc()
            try:
                await consumer.channel_layer.send(
                    consumer.channel_name, {"type": "stream.catch_up", "seq": target}
                )
            except Exception:  # a full queue: it is still behind at the next check
                logger.warning("could not queue a catch-up for %s", consumer.connection_id)
        return behind


stream_check = per_loop(StreamCheck)
