"""Ordered streams in the fan-out layer: an early `seq` is held until the ones before it come.

Group messages of the ordered types (the caller names them: `ordered_types` in CHANNEL_LAYERS)
carry a contiguous per-group `seq`. Two commits publish from two threads, so Redis may carry seq 6
before seq 5; the layer then holds 6 (at most `wait` seconds) until 5 comes, once per process,
instead of letting every member see a gap and read the missing event from the database. If 5 does
not come in time, 6 goes out and the members fill the gap from the log, as for any loss
(tripsage_layer_held_total).

Each stream also keeps the last `recent` events it sent out, while they are contiguous: a member
that comes back (`resume`) and missed only those is answered from memory (`recent_events`), with
the frames the process already encoded, instead of reading the log; after a reconnect storm,
hundreds of members ask for the same few seconds of events at once (bench S7).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from metrics import instruments


class Stream:
    """Where one ordered group's stream stands in this process: the last `seq` offered to its
    members, and events that came early, by seq, until `deadline`."""

    __slots__ = ("deadline", "held", "last", "recent")

    def __init__(self, last: int, recent: int) -> None:
        self.last = last
        self.held: dict[int, dict[str, Any]] = {}
        self.deadline = 0.0
        # The last events sent out, contiguous by seq (emptied at a gap); None: kept none.
        self.recent: deque[dict[str, Any]] | None = deque(maxlen=recent) if recent else None

    def sent(self, ready: list[dict[str, Any]], keep: frozenset[str]) -> list[dict[str, Any]]:
        """Remember the events going out (in order) whose type is in `keep`; returns them."""
        recent = self.recent
        if recent is not None:
            for payload in ready:
                if payload["type"] not in keep:
                    continue
                if recent and payload["seq"] != recent[-1]["seq"] + 1:
                    recent.clear()  # a gap: what came before it no longer answers a resume
                recent.append(payload)
        return ready


class OrderedStreams:
    """The streams of one event loop's groups. Pure bookkeeping: the listener asks what may go
    out now (`in_order`, `overdue`) and how long it may wait for Redis (`wait`)."""

    def __init__(
        self,
        types: Iterable[str],
        wait: float,
        limit: int,
        recent: int = 0,
        recent_types: Iterable[str] | None = None,
    ) -> None:
        self.types = frozenset(types)  # message types whose `seq` is put in order
        self.reorder_wait = wait  # seconds an early event waits for the ones before it
        self.reorder_limit = limit  # events held per group at most
        self.recent = recent  # events kept per group for resumes (0: none) ...
        # ... of these types (default: every ordered type)
        self.recent_types = frozenset(self.types if recent_types is None else recent_types)
        self.streams: dict[str, Stream] = {}
        self.holding: set[str] = set()  # groups whose stream holds early events

    def in_order(self, group: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of an ordered group that can go out now, in `seq` order."""
        seq = payload["seq"]
        stream = self.streams.get(group)
        if stream is None:  # the first event this process sees: the stream starts here
            stream = self.streams[group] = Stream(seq - 1, self.recent)
        if seq <= stream.last:
            return [payload]  # late (released past already) or repeated: members drop or place it
        if seq > stream.last + 1:
            if not stream.held:
                stream.deadline = time.monotonic() + self.reorder_wait
                self.holding.add(group)
            stream.held[seq] = payload
            if len(stream.held) <= self.reorder_limit:
                return []
            return self._release(group, stream)  # too far ahead to be a reordering
        ready = [payload]
        stream.last = seq
        if stream.held:
            while stream.last + 1 in stream.held:
                stream.last += 1
                ready.append(stream.held.pop(stream.last))
            instruments.LAYER_HELD.labels("reordered").inc(len(ready) - 1)
            if not stream.held:
                self.holding.discard(group)
        return stream.sent(ready, self.recent_types)

    def _release(self, group: str, stream: Stream) -> list[dict[str, Any]]:
        """Give up waiting: the held events go out in order; members fill the gap from the log."""
        instruments.LAYER_HELD.labels("released").inc(len(stream.held))
        ready = [stream.held[seq] for seq in sorted(stream.held)]
        stream.held.clear()
        self.holding.discard(group)
        stream.last = ready[-1]["seq"]
        return stream.sent(ready, self.recent_types)

    def wait(self, idle: float) -> float:
        """How long the listener may wait for Redis: until the first hold runs out, else `idle`."""
        if not self.holding:
            return idle
        first = min(
            (self.streams[group].deadline for group in self.holding if group in self.streams),
            default=0.0,
        )
        return max(0.0, first - time.monotonic())

    def overdue(self, everything: bool = False) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Each group's held events that waited their full time (or, when the stream's position
        is lost with the Redis connection, everything held), group by group: the caller sends
        one group's before the next is looked at."""
        now = time.monotonic()
        for group in list(self.holding):
            stream = self.streams.get(group)
            if stream is None or not stream.held:  # the group went while we were sending
                self.holding.discard(group)
                continue
            if everything or stream.deadline <= now:
                yield group, self._release(group, stream)

    def expect(self, group: str, seq: int) -> None:
        """A member read `group` up to `seq`: a stream not seen yet starts there."""
        if group not in self.streams:
            self.streams[group] = Stream(seq, self.recent)

    def recent_events(self, group: str, after: int, upto: int) -> list[dict[str, Any]] | None:
        """The events of `group` with `after < seq <= upto`, in order, if this process sent out
        every one of them and still keeps them; else None (read the log)."""
        stream = self.streams.get(group)
        recent = stream.recent if stream is not None else None
        if after >= upto:
            return []
        if not recent or recent[0]["seq"] > after + 1 or recent[-1]["seq"] < upto:
            return None
        first = recent[0]["seq"]
        return [recent[i] for i in range(after + 1 - first, upto + 1 - first)]

    def forget(self, group: str) -> None:
        """`group` has no local member (any more, or yet): its next stream starts afresh."""
        self.streams.pop(group, None)
        self.holding.discard(group)

    def clear(self) -> None:
        self.streams.clear()
        self.holding.clear()
