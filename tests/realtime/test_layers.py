"""realtime.layers.FanoutChannelLayer against real Redis: two layer instances stand for two
server processes; its ordered-stream bookkeeping on its own."""

from __future__ import annotations

import asyncio
import uuid

import msgpack
import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from realtime.layers import FanoutChannelLayer
from realtime.layers.streams import OrderedStreams
from tests.conftest import require_redis_url


@pytest.fixture
def make_layer():
    prefix = f"layertest{uuid.uuid4().hex[:8]}"
    url = require_redis_url()

    def make(**options):
        # As CHANNEL_LAYERS configures it: the layer itself orders no type.
        options.setdefault("ordered_types", ("trip.event", "chat.event"))
        return FanoutChannelLayer(hosts=[{"address": url}], prefix=prefix, **options)

    return make


async def receive(layer, channel, timeout=5.0):
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_arrives(layer, channel, wait=0.5):
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), wait)


async def test_group_send_reaches_members_in_every_process(make_layer):
    one, two = make_layer(), make_layer()
    a, b = await one.new_channel(), await two.new_channel()
    await one.group_add("trip-1", a)
    await two.group_add("trip-1", b)
    await one.group_send("trip-1", {"type": "trip.event", "seq": 1})
    assert (await receive(one, a))["seq"] == 1
    assert (await receive(two, b))["seq"] == 1


async def test_a_message_published_right_after_group_add_is_not_missed(make_layer):
    one, two = make_layer(), make_layer()
    channel = await one.new_channel()
    for n in range(20):
        group = f"fresh-{n}"
        await one.group_add(group, channel)
        await two.group_send(group, {"type": "x", "n": n})
        assert (await receive(one, channel))["n"] == n


async def test_send_to_a_channel_of_another_process(make_layer):
    one, two = make_layer(), make_layer()
    channel = await two.new_channel()
    await one.send(channel, {"type": "hello"})
    assert (await receive(two, channel))["type"] == "hello"


async def test_group_discard_stops_delivery(make_layer):
    one = make_layer()
    channel = await one.new_channel()
    await one.group_add("g", channel)
    await one.group_discard("g", channel)
    await one.group_send("g", {"type": "x"})
    await nothing_arrives(one, channel)


async def test_direct_handler_takes_its_types_and_can_decline(make_layer):
    """A direct handler is a plain call per member: it declines (False: queued for the
    consumer), takes the message with nothing to send (True), or returns the write, which the
    layer awaits before the next member."""
    one = make_layer()
    channel = await one.new_channel()
    await one.group_add("g", channel)
    taken, written = [], []

    async def write(n):
        await asyncio.sleep(0)
        written.append(n)

    def handler(message):
        n = message["n"]
        taken.append(n)
        if n % 2:
            return False  # odd ones declined: queued for the consumer
        return write(n) if n else True

    one.attach(channel, {"trip.event": handler})
    for n in range(5):
        await one.group_send("g", {"type": "trip.event", "n": n})
    await one.group_send("g", {"type": "other", "n": 9})
    queued = [(await receive(one, channel))["n"] for _ in range(3)]
    assert queued == [1, 3, 9]
    assert taken == [0, 1, 2, 3, 4]
    assert written == [2, 4]
    one.detach(channel)


class _Socket:
    def __init__(self) -> None:
        self.got: list[int] = []
        self.arrived = asyncio.Event()

    def on_event(self, message):
        self.got.append(message["n"])
        self.arrived.set()
        return True


async def test_handlers_that_are_methods_of_one_socket_are_shared_by_its_class(make_layer):
    """Each socket's handlers are its own methods; the layer keeps the socket and one table of
    its class's functions, so that an idle socket holds no handler dict of its own."""
    one = make_layer()
    sockets = [_Socket(), _Socket()]
    channels = [await one.new_channel() for _ in sockets]
    for socket, channel in zip(sockets, channels, strict=True):
        await one.group_add("g", channel)
        one.attach(channel, {"trip.event": socket.on_event})
    await one.group_send("g", {"type": "trip.event", "n": 1})
    for socket in sockets:
        await asyncio.wait_for(socket.arrived.wait(), 5)
    assert [socket.got for socket in sockets] == [[1], [1]]
    inboxes = [one._local().inboxes[channel] for channel in channels]
    assert inboxes[0].direct is inboxes[1].direct
    assert [inbox.owner for inbox in inboxes] == sockets
    for channel in channels:
        one.detach(channel)


def held(outcome: str) -> float:
    return REGISTRY.get_sample_value("tripsage_layer_held_total", {"outcome": outcome}) or 0.0


async def test_an_ordered_stream_reaches_members_in_seq_order(make_layer):
    """Two commits publish from two threads: Redis may carry seq 3 before seq 2. The layer
    holds 3 until 2 comes, once per process, so no member sees a gap."""
    one, two = make_layer(), make_layer(reorder_wait=5.0)
    channel = await two.new_channel()
    await two.group_add("trip-9", channel)
    reordered = held("reordered")
    for seq in (1, 3, 4, 2, 5):
        await one.group_send("trip-9", {"type": "trip.event", "seq": seq})
    got = [(await receive(two, channel))["seq"] for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]
    assert held("reordered") - reordered == 2  # 3 and 4 waited for 2
    # Unordered types and events without a seq are never held.
    await one.group_send("trip-9", {"type": "trip.presence", "n": 1})
    assert (await receive(two, channel))["n"] == 1


async def test_a_lost_event_stops_holding_the_stream_after_the_wait(make_layer):
    one, two = make_layer(), make_layer(reorder_wait=0.3)
    channel = await two.new_channel()
    await two.group_add("chat-9", channel)
    released = held("released")
    await one.group_send("chat-9", {"type": "chat.event", "seq": 1})
    await one.group_send("chat-9", {"type": "chat.event", "seq": 3})  # 2 never comes
    assert (await receive(two, channel))["seq"] == 1
    await nothing_arrives(two, channel, wait=0.15)  # 3 waits for 2 ...
    assert (await receive(two, channel))["seq"] == 3  # ... until the wait runs out
    assert held("released") - released == 1
    await one.group_send("chat-9", {"type": "chat.event", "seq": 4})
    assert (await receive(two, channel))["seq"] == 4  # the stream goes on from there
    await one.group_send("chat-9", {"type": "chat.event", "seq": 2})
    assert (await receive(two, channel))["seq"] == 2  # late: members drop or place it


def test_a_stream_too_far_ahead_stops_waiting_at_the_hold_limit():
    """More early events than `reorder_limit` are not a reordering but a loss: they go out in
    order at once, and the members fill the gap from the log."""
    streams = OrderedStreams(("trip.event",), wait=5.0, limit=2)
    streams.expect("trip-1", 10)
    event = {seq: {"type": "trip.event", "seq": seq} for seq in range(11, 16)}
    assert streams.in_order("trip-1", event[12]) == []
    assert streams.in_order("trip-1", event[13]) == []
    assert [e["seq"] for e in streams.in_order("trip-1", event[14])] == [12, 13, 14]
    assert streams.holding == set() and streams.wait(30.0) == 30.0
    assert [e["seq"] for e in streams.in_order("trip-1", event[15])] == [15]
    assert [e["seq"] for e in streams.in_order("trip-1", event[11])] == [11]  # late: passed on


def test_a_stream_keeps_its_last_events_while_they_are_contiguous():
    """What a `resume` may be answered with from memory: only a run of events with no gap, the
    last `recent` of them; anything else is read from the log (None)."""
    streams = OrderedStreams(("trip.event",), wait=5.0, limit=10, recent=4)
    streams.expect("trip-1", 10)
    event = {seq: {"type": "trip.event", "seq": seq} for seq in range(11, 30)}
    for seq in (11, 12, 13):
        streams.in_order("trip-1", event[seq])
    assert [e["seq"] for e in streams.recent_events("trip-1", 10, 13)] == [11, 12, 13]
    assert [e["seq"] for e in streams.recent_events("trip-1", 11, 12)] == [12]
    assert streams.recent_events("trip-1", 13, 13) == []
    assert streams.recent_events("trip-1", 9, 13) is None  # 10 was never sent here
    assert streams.recent_events("trip-1", 10, 14) is None  # 14 not yet
    assert streams.recent_events("trip-2", 0, 1) is None  # no such stream
    for seq in (15, 16, 14):  # reordered: sent out as 14, 15, 16
        streams.in_order("trip-1", event[seq])
    assert [e["seq"] for e in streams.recent_events("trip-1", 12, 16)] == [13, 14, 15, 16]
    assert streams.recent_events("trip-1", 11, 16) is None  # 12 fell out of the last four
    # A gap (18 given up on, 19 released past it): nothing before it answers a resume.
    streams.reorder_limit = 0
    streams.in_order("trip-1", event[19])
    assert streams.recent_events("trip-1", 15, 16) is None
    assert [e["seq"] for e in streams.recent_events("trip-1", 18, 19)] == [19]
    # Kept nothing when asked to keep nothing, or nothing of that type.
    none = OrderedStreams(("trip.event",), wait=5.0, limit=10)
    none.expect("trip-1", 10)
    none.in_order("trip-1", event[11])
    assert none.recent_events("trip-1", 10, 11) is None
    trips_only = OrderedStreams(("trip.event", "chat.event"), 5.0, 10, 4, ("trip.event",))
    trips_only.expect("chat-1", 0)
    trips_only.in_order("chat-1", {"type": "chat.event", "seq": 1})
    assert trips_only.recent_events("chat-1", 0, 1) is None


async def test_a_group_joined_again_starts_its_stream_from_the_new_snapshot(make_layer):
    """A stream left from an earlier membership must not hold the next event: the member's
    snapshot (`expect`) says where the stream stands now."""
    one, two = make_layer(), make_layer(reorder_wait=5.0)
    channel = await two.new_channel()
    await two.group_add("trip-8", channel)
    await one.group_send("trip-8", {"type": "trip.event", "seq": 40})
    assert (await receive(two, channel))["seq"] == 40
    await two.group_discard("trip-8", channel)
    # Seq 41 was already on its way when the last member left: the listener reads it after.
    listener = next(iter(two._states.values()))
    packed = msgpack.packb({"type": "trip.event", "seq": 41}, use_bin_type=True)
    await listener._handle(
        {"type": "message", "channel": two.group_key("trip-8").encode(), "data": packed}
    )
    again = await two.new_channel()
    await two.group_add("trip-8", again)
    two.expect("trip-8", 90)
    await one.group_send("trip-8", {"type": "trip.event", "seq": 91})
    assert (await receive(two, again, timeout=1.0))["seq"] == 91  # not held for 5 s


async def test_without_ordered_types_the_layer_holds_nothing(make_layer):
    """The layer knows no message type of its own: unless its caller names ordered types, an
    early seq goes out as it comes."""
    one, two = make_layer(), make_layer(ordered_types=(), reorder_wait=5.0)
    channel = await two.new_channel()
    await two.group_add("trip-7", channel)
    for seq in (1, 3, 2):
        await one.group_send("trip-7", {"type": "trip.event", "seq": seq})
    got = [(await receive(two, channel, timeout=1.0))["seq"] for _ in range(3)]
    assert got == [1, 3, 2]


def fanout_count(connection_type: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "tripsage_fanout_latency_seconds_count", {"connection_type": connection_type}
        )
        or 0.0
    )


async def test_fanout_latency_is_labelled_by_the_callers_function(make_layer):
    """With a label function (CHANNEL_LAYERS' `fanout_latency_label`), the layer times each
    published event once per process, labelled by the group's connection type, and says so
    (consumers then need not time each send); groups it does not label are not timed."""
    labelled = make_layer(fanout_latency_label="events.groups.connection_type_of")
    assert labelled.observes_fanout
    channel = await labelled.new_channel()
    for group in ("chat-5", "realtime-users"):
        await labelled.group_add(group, channel)
    before = fanout_count("chat")
    await labelled.group_send("chat-5", {"type": "chat.event", "seq": 1, "published_at": 1.0})
    await labelled.group_send("realtime-users", {"type": "x", "published_at": 1.0})
    await receive(labelled, channel)
    await receive(labelled, channel)
    assert fanout_count("chat") - before == 1

    plain = make_layer()
    assert not plain.observes_fanout
    other = await plain.new_channel()
    await plain.group_add("chat-6", other)
    before = fanout_count("chat")
    await plain.group_send("chat-6", {"type": "chat.event", "seq": 2, "published_at": 1.0})
    await receive(plain, other)
    assert fanout_count("chat") == before


def test_a_wrong_label_function_path_fails_at_construction(make_layer):
    with pytest.raises(ImportError):
        make_layer(fanout_latency_label="events.groups.no_such_function")


async def test_inbox_is_bounded_and_drops_are_counted(make_layer):
    one = make_layer(capacity=3)
    channel = await one.new_channel()
    await one.group_add("g", channel)
    before = REGISTRY.get_sample_value("tripsage_layer_dropped_total") or 0
    for n in range(10):
        await one.group_send("g", {"type": "x", "n": n})

    def dropped() -> float:
        return REGISTRY.get_sample_value("tripsage_layer_dropped_total") - before

    # The listener delivers in its own time: read only once it has handled all ten (reading
    # earlier frees room for a later one, which then rightly arrives).
    for _ in range(100):
        if dropped() >= 7:
            break
        await asyncio.sleep(0.02)
    got = [(await receive(one, channel))["n"] for _ in range(3)]
    assert got == [0, 1, 2]
    await nothing_arrives(one, channel)
    assert dropped() == 7


async def test_blocking_publish_from_synchronous_code(make_layer):
    one = make_layer()
    channel = await one.new_channel()
    await one.group_add("g", channel)
    await sync_to_async(one.publish_blocking, thread_sensitive=False)("g", {"type": "sync"})
    assert (await receive(one, channel))["type"] == "sync"


async def test_the_layer_resubscribes_after_redis_restarts(tmp_path):
    """Messages published while Redis is down are lost (at most once, like every layer); once
    it is back, the process's subscriptions are restored without any consumer doing anything."""
    import shutil
    import socket
    import subprocess

    if not shutil.which("redis-server"):
        pytest.fail("redis-server is needed for this test (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(tmp_path)]  # fmt: skip

    async def start() -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return process
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    server = await start()
    try:
        layer = FanoutChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{port}/0"}], prefix="rs")
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        await layer.group_send("g", {"type": "x", "n": 1})
        assert (await receive(layer, channel))["n"] == 1

        server.kill()
        await server.wait()
        server = await start()
        for _ in range(100):  # until the listener has resubscribed
            await layer.group_send("g", {"type": "x", "n": 2})
            try:
                assert (await receive(layer, channel, timeout=0.2))["n"] == 2
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the layer never resubscribed after Redis came back")
    finally:
        server.kill()
        await server.wait()
