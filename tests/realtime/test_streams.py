"""Ordered streams (realtime/streams.py) on a stand-in socket: in order, once, no gaps."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import REGISTRY

from protocol import ConnectionType
from realtime.streams import OrderedStream


def event(seq: int) -> dict[str, Any]:
    """A fanned-out event as the layer hands it over: pre-encoded text and its `seq`."""
    return {"type": "chat.event", "seq": seq, "text": json.dumps({"seq": seq})}


class Socket:
    """What a stream needs of a consumer, recording what reached the client and how."""

    connection_type = ConnectionType.CHAT

    def __init__(self) -> None:
        self.closing = False
        self.out: list[tuple[str, int]] = []

    def write_published(self, event: dict[str, Any]) -> bool:
        self.out.append(("direct", event["seq"]))
        return True

    async def send_published(self, event: dict[str, Any]) -> None:
        self.out.append(("queued", event["seq"]))

    async def send_event(self, message: dict[str, Any]) -> None:
        self.out.append(("log", message["seq"]))


class Log:
    """The connection type's gap fill, reading `messages` and counting its reads."""

    def __init__(self, messages: list[int]) -> None:
        self.messages = messages
        self.reads: list[tuple[int, int]] = []
        self.stream: OrderedStream
        self.paused_while_reading: list[bool] = []

    async def fill_gap(self, up_to: int) -> bool:
        self.reads.append((self.stream.last_seq, up_to))
        self.paused_while_reading.append(self.stream.paused)
        after = self.stream.last_seq
        missed = [{"seq": seq} for seq in self.messages if seq > after]
        await self.stream.send_missed(missed, up_to)
        return True


def stream_at(last_seq: int, log: list[int] | None = None) -> tuple[OrderedStream, Socket, Log]:
    socket, reader = Socket(), Log(log or [])
    stream = reader.stream = OrderedStream(socket, last_seq, reader.fill_gap)
    return stream, socket, reader


def gap_fills() -> float:
    return (
        REGISTRY.get_sample_value(
            "tripsage_ws_replays_total", {"connection_type": "chat", "kind": "gap_fill"}
        )
        or 0.0
    )


def test_the_next_seq_takes_the_fast_path():
    stream, socket, _ = stream_at(5)
    assert stream.write_next(event(6)) is True
    assert socket.out == [("direct", 6)] and stream.last_seq == 6


async def test_a_duplicate_is_dropped_on_either_path():
    stream, socket, reader = stream_at(5)
    assert stream.write_next(event(5)) is True  # taken, so the layer does not queue it
    assert await stream.send_queued(event(4)) is False
    assert await stream.send_queued(event(6)) is True
    assert await stream.send_queued(event(6)) is False
    assert stream.write_next(event(6)) is True
    assert socket.out == [("queued", 6)] and stream.last_seq == 6 and reader.reads == []


async def test_a_gap_is_filled_from_the_log_once_and_in_order():
    stream, socket, reader = stream_at(5, log=[6, 7, 8, 9])
    before = gap_fills()
    assert stream.write_next(event(8)) is False  # not the next seq: to the queue
    assert await stream.send_queued(event(8)) is True
    assert socket.out == [("log", 6), ("log", 7), ("queued", 8)]
    assert reader.reads == [(5, 7)] and reader.paused_while_reading == [True]
    assert gap_fills() - before == 2
    assert await stream.send_queued(event(7)) is False  # already filled: never twice
    assert await stream.send_queued(event(9)) is True
    assert socket.out[-1] == ("queued", 9) and len(reader.reads) == 1


async def test_a_gap_fill_skips_what_was_sent_meanwhile_and_stops_at_the_event():
    stream, socket, _ = stream_at(5)
    await stream.send_missed([{"seq": seq} for seq in (4, 5, 6, 7, 8)], up_to=7)
    assert socket.out == [("log", 6), ("log", 7)] and stream.last_seq == 7


async def test_an_event_a_refused_gap_fill_revealed_is_dropped():
    socket = Socket()

    async def refuse(up_to: int) -> bool:
        return False  # the user is no longer a member: the socket was closed

    stream = OrderedStream(socket, 5, refuse)
    assert await stream.send_queued(event(9)) is False
    assert socket.out == [] and stream.last_seq == 5


async def test_the_fast_path_is_refused_while_paused():
    stream, socket, _ = stream_at(5)
    async with stream.fast_path_paused():
        async with stream.fast_path_paused():  # a gap fill inside a request: pauses nest
            assert stream.write_next(event(6)) is False
        assert stream.paused and stream.write_next(event(6)) is False
    assert socket.out == [] and stream.last_seq == 5
    assert not stream.paused
    assert stream.write_next(event(6)) is True
    assert socket.out == [("direct", 6)]


def test_the_fast_path_is_refused_to_a_closing_socket():
    stream, socket, _ = stream_at(5)
    socket.closing = True
    assert stream.write_next(event(6)) is False
    assert socket.out == [] and stream.last_seq == 5
