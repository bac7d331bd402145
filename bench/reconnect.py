"""S7: a reconnect storm on live traffic.

The members of one trip are spread over two daphne processes; senders on the first process edit
at a steady rate throughout. After a steady stretch the second process is killed with SIGKILL;
its members reconnect with the browser client's policy (bench/loadgen.py: full jitter, the
server's `retry_after` honoured) to the surviving process (and, in the `restart` variant, to the
killed process started again on its port as well) and `resume` from the highest `seq` they saw.
Every member checks its stream by `seq`. Reported: the time from the kill until every moved
member is back and caught up, events lost and duplicated (both must be 0), and the p99 latency
of the members that stayed connected during the storm against their p99 before the kill.
"""

from __future__ import annotations

import statistics
import time
from array import array
from typing import Any

from bench import loadgen
from bench.infra import (
    TEXT_FIELDS,
    Fixture,
    Worker,
    close_all,
    cpu_seconds,
    log,
    percentile,
    start_servers,
)


def s7(
    fx: Fixture,
    apps: list[str],
    members: int,
    rate: float,
    before: float,
    after: float,
    *,
    variants: tuple[str, ...] = ("survivor",),
    timeout: float = 60,
    settle: float = 1.0,
) -> list[dict[str, Any]]:
    rows = []
    for app in apps:
        for variant in variants:
            servers = start_servers(app, fx.env, 2)
            try:
                row = storm(servers, fx, members, rate, before, after, variant, timeout, settle)
            finally:
                servers.stop()
            rows.append({"app": app, "variant": variant, **row})
            for fault in row["faults"]:
                log(f"S7 {app} {variant}: member {fault}")
            back = row["all_back_s"]
            log(
                f"S7 {app} {variant}: {row['moved']} reconnected, all back and caught up in "
                f"{'-' if back is None else f'{back:.1f}'} s; lost {row['lost']}, undelivered "
                f"{row['undelivered']}, duplicates "
                f"{row['duplicates']}, out of order {row['reordered']} live and "
                f"{row['reordered_resuming']} while resuming; stayers' p99 "
                f"{row['p99_before']:.0f} -> "
                f"{row['p99_storm']:.0f} ms"
            )
    return rows


def storm(
    servers: Any,
    fx: Fixture,
    members: int,
    rate: float,
    before: float,
    after: float,
    variant: str,
    timeout: float,
    settle: float = 1.0,
) -> dict[str, Any]:
    survivor, victim = servers.targets
    tokens = fx.member_tokens[:members]
    spec = {"path": fx.trip_path, "concurrency": 25}
    stay = Worker(loadgen.members, {**spec, "targets": [survivor], "tokens": tokens[0::2]})
    move = Worker(loadgen.members, {**spec, "targets": [victim], "tokens": tokens[1::2]})
    sender = Worker(
        loadgen.senders,
        {"targets": [survivor], "path": fx.trip_path, "tokens": fx.sender_tokens,
         "fields": TEXT_FIELDS},
    )  # fmt: skip
    workers = [stay, move, sender]
    try:
        ready = [w.recv(600) for w in workers]
        errors = [e for r in ready for e in r[2]]
        if errors:
            log(f"S7: {len(errors)} connects failed, e.g. {errors[0]}")
        moved = ready[1][1]
        time.sleep(settle)  # presence settles
        move.send("targets", [survivor, victim] if variant == "restart" else [survivor])
        sender.send("stream", rate)
        started = time.time() + 0.2
        time.sleep(before)
        cpu0 = cpu_of(servers, 0)
        killed = time.time()
        servers.kill(1)
        log(f"S7: killed the process on port {victim[1]} at {killed:.3f}; survivor {survivor[1]}")
        if variant == "restart":
            servers.restart(1)
        # Until every moved member is back and caught up (loadgen's _Member._caught), or timeout.
        status: dict[str, int] = {}
        recovered = None
        while time.time() < killed + timeout:
            status = move.ask("status")[1]
            if status.get("caught_up", 0) + status.get("failed", 0) >= len(tokens[1::2]):
                recovered = time.time()
                break
            time.sleep(0.25)
        storm_end = recovered or time.time()
        cpu_storm = cpu_of(servers, 0) - cpu0
        time.sleep(after)
        sent, last_seq = sender.ask("stop", timeout=120)[1:]
        # Drain: until every member holds every seq up to the last edit, or 15 s.
        deadline = time.time() + 15
        while time.time() < deadline:
            behind = sum(w.ask("status", last_seq)[1].get("behind", 0) for w in (stay, move))
            if not behind:
                break
            time.sleep(0.25)
        collected = [w.ask("collect", last_seq) for w in (stay, move)]
        acks = sender.ask("collect")[1]
    finally:
        close_all(workers)
    (_, stayers, at_raw, lat_raw), (_, movers, _, _) = collected
    received_at, latency = array("d"), array("d")
    received_at.frombytes(at_raw)
    latency.frombytes(lat_raw)
    warm = started + 1.0  # the first second's edits meet a fresh trip: left out of "before"
    before_window = sorted(
        v for t, v in zip(received_at, latency, strict=True) if warm <= t < killed
    )
    storm_window = sorted(
        v for t, v in zip(received_at, latency, strict=True) if killed <= t <= storm_end
    )
    outages = movers["outages"]
    established = sorted(o[1] - killed for o in outages if o[1] is not None)
    caught = sorted(o[3] - killed for o in outages if o[3] is not None)
    p99_before = percentile(before_window, 99)
    p99_storm = percentile(storm_window, 99)
    timeline = _timeline(received_at, latency, caught, killed, warm, len(tokens[1::2]))
    return {
        "members": members,
        "moved": moved,
        "stayed": ready[0][1],
        "connect_errors": len(errors),
        "rate": rate,
        "sent": sent,
        "last_seq": last_seq,
        "acks": acks,
        "recovered": recovered is not None,
        # From the kill until the last moved member was back and caught up (its own clock);
        # None when some never were within the timeout.
        "all_back_s": caught[-1] if recovered is not None and caught else None,
        "polled_back_s": (recovered - killed) if recovered is not None else None,
        "caught_p50_s": statistics.median(caught) if caught else None,
        "caught_max_s": caught[-1] if caught else None,
        "established_p50_s": statistics.median(established) if established else None,
        "established_max_s": established[-1] if established else None,
        "status_at_end": status,
        "attempts": movers["attempts"],
        "refusals": movers["refusals"],
        "replayed": movers["replayed"],
        "resyncs": movers["resyncs"] + stayers["resyncs"],
        "resynced": movers["resynced"] + stayers["resynced"],
        # Lost: a seq that never arrived although a later one did. Undelivered: seqs after the
        # newest a member received, still missing when the drain ended (the server behind).
        "lost": movers["gaps"] + stayers["gaps"],
        "undelivered": movers["missing"] + stayers["missing"] - movers["gaps"] - stayers["gaps"],
        "members_missing": movers["members_missing"] + stayers["members_missing"],
        "duplicates": movers["duplicates"] + stayers["duplicates"],
        "reordered": movers["reordered"] + stayers["reordered"],
        "reordered_resuming": movers["reordered_resuming"] + stayers["reordered_resuming"],
        "stayer_outages": len(stayers["outages"]) + len(stayers["open_outages"]),
        "p99_before": p99_before,
        "p99_storm": p99_storm,
        "p99_ratio": p99_storm / p99_before if p99_before == p99_before and p99_before else None,
        "samples_before": len(before_window),
        "samples_storm": len(storm_window),
        "survivor_cpu_storm_s": cpu_storm,
        "storm_s": storm_end - killed,
        "timeline": timeline,
        "faults": movers["faults"] + stayers["faults"],
    }


def _timeline(
    received_at: array,
    latency: array,
    caught: list[float],
    killed: float,
    start: float,
    moved: int,
    bucket: float = 0.5,
) -> dict[str, list[float]]:
    """Per `bucket` seconds from `start` (times relative to the kill): the stayers' p99 and the
    share of moved members back and caught up by the bucket's end."""
    buckets: dict[int, list[float]] = {}
    for t, v in zip(received_at, latency, strict=True):
        if t >= start:
            buckets.setdefault(int((t - start) // bucket), []).append(v)
    out: dict[str, list[float]] = {"t": [], "p99": [], "caught": []}
    for i in sorted(buckets):
        end = start + (i + 1) * bucket - killed
        out["t"].append(round(end - bucket / 2, 3))
        out["p99"].append(round(percentile(sorted(buckets[i]), 99), 1))
        out["caught"].append(round(sum(1 for c in caught if c <= end) / max(1, moved), 4))
    return out


def cpu_of(servers: Any, index: int) -> float:
    return cpu_seconds(servers.processes[index].pid)
