"""The S7 load generator's reconnect policy and stream check (bench/loadgen.py): what the reconnect
storm reports as lost, duplicated and caught up rests on them."""

from __future__ import annotations

import json

from bench import loadgen


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))


def frame(type_: str, **fields: object) -> bytes:
    return json.dumps({"type": type_, **fields}, separators=(",", ":")).encode()


def connected_member(snapshot_seq: int) -> tuple[loadgen._Member, FakeSocket]:
    group = loadgen._Members(
        {"path": "/ws/trips/1/", "targets": [("127.0.0.1", 1)], "tokens": ["t"]}
    )
    member = group.members[0]
    member.ws = ws = FakeSocket()
    member.on_text(ws, frame("connection.established"))
    member.on_text(ws, frame("trip.snapshot", seq=snapshot_seq, trip={"seq": 0}))
    return member, ws


def test_reconnect_delay_is_full_jitter_capped_at_30_s_and_at_least_the_servers_hint():
    assert loadgen.reconnect_delay(1, None, lambda: 0.5) == 0.5
    assert loadgen.reconnect_delay(3, None, lambda: 0.5) == 2.0
    assert loadgen.reconnect_delay(10, None, lambda: 1.0) == 30.0
    assert loadgen.reconnect_delay(1, None, lambda: 0.0) == 0.0
    # A hint (4013, overloaded) is jittered up to twice itself; the backoff wins when longer.
    assert loadgen.reconnect_delay(1, 2.0, lambda: 0.5, code=4013) == 3.0
    assert loadgen.reconnect_delay(6, 2.0, lambda: 0.5, code=4013) == 15.0
    # A 4029's hint says when a connect token is back: not jittered.
    assert loadgen.reconnect_delay(1, 2.0, lambda: 0.5, code=4029) == 2.0


def test_a_gap_below_a_later_event_is_lost_and_a_repeat_is_a_duplicate():
    member, ws = connected_member(10)
    for seq in (11, 13, 13):
        member.on_text(ws, frame("trip.updated", seq=seq, value="x"))
    assert member.base == 10
    assert member.gaps() == 1  # 12
    assert member.duplicates == 1
    assert member.missing(14) == 2  # 12, and 14 not yet
    assert member.contiguous == 11


def test_resume_carries_the_last_seq_from_before_the_socket_even_when_later_frames_share_its_read():
    member, ws = connected_member(10)
    member.on_text(ws, frame("trip.updated", seq=11, value="x"))
    member.ws, member.state, member.outage = None, "down", [0.0, None, None, None]
    # The reconnect: established, the snapshot and a live event arrive in one read, before the
    # coroutine that opened the socket runs again.
    member.resume_pending = True
    member.ws = ws2 = FakeSocket()
    member.on_text(ws2, frame("connection.established"))
    member.on_text(ws2, frame("trip.snapshot", seq=14, trip={"seq": 14}))
    member.on_text(ws2, frame("trip.updated", seq=15, value="x"))
    assert ws2.sent == [{"type": "resume", "last_seq": 11}]
    for seq in (12, 13, 14):  # the replay
        member.on_text(ws2, frame("trip.updated", seq=seq, value="x"))
    member.on_text(ws2, frame("resume.complete", last_seq=11, replayed=3, seq=15))
    assert member.gaps() == 0 and member.duplicates == 0
    assert member.outage is None and len(member.outages) == 1  # back and caught up
    assert member.reordered == 0  # the live event that crossed the resume is in order


def test_a_refusal_read_with_the_handshake_is_kept_with_its_hint():
    member, _ = connected_member(10)
    member.ws, member.state = None, "down"
    opening = FakeSocket()  # not yet returned by fastws.connect
    details = {"reason": "overloaded", "retry_after": 1.5}
    member.on_text(opening, frame("error", error={"code": "SERVER_ERROR", "details": details}))
    assert member.refusal == "overloaded"
    assert member.retry_after == 1.5
