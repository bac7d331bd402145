"""Writes the harness's results into docs/performance.md (between the bench markers) and plots
one PNG per scenario into docs/img/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COLORS = {
    "tripsage": "#1f77b4",
    "tripsage-asgi": "#9467bd",
    "tripsage-before": "#7f7f7f",
    "channels": "#d62728",
    "raw": "#2ca02c",
}


def _ratio(value: float, reference: float | None) -> str:
    if not reference or reference != reference or value != value:
        return "-"
    return f"{value / reference:.2f}x"


def _by(rows: list[dict], **match: Any) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _plot(name: str, draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    draw(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / f"{name}.png")
    plt.close(fig)
    return f"![{name}](img/{name}.png)"


def _lines(
    name: str,
    rows: list[dict],
    x: Any,
    y: str,
    xlabel: str,
    ylabel: str,
    *,
    log: bool = True,
    hline: float | None = None,
) -> str:
    """One line per app: x(row) against row[y]."""

    def draw(ax: Any) -> None:
        for app in COLORS:
            points = [(x(r), r[y]) for r in rows if r.get("app") == app and not r.get("summary")]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=app, color=COLORS[app])
        if hline is not None:
            ax.axhline(hline, color="grey", linestyle="--", linewidth=1)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    return _plot(name, draw)  # fmt: skip


def _s1(rows: list[dict]) -> list[str]:
    out = [
        "### S1: fan-out latency (10 edits/s from 3 users, open loop)",
        "",
        "| app | members | delivered | p50 ms | p99 ms | max ms | server CPU us/delivery "
        "| p99 vs raw | p99 vs channels |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        raw = _by(rows, app="raw", members=r["members"])
        plain = _by(rows, app="channels", members=r["members"])
        out.append(
            f"| {r['app']} | {r['members']} | {r['delivered']:.1%} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.0f} | {r['cpu_us_per_delivery']:.0f} | "
            f"{_ratio(r['p99'], raw and raw['p99'])} | {_ratio(r['p99'], plain and plain['p99'])} |"
        )

    plot = _lines("bench-s1", rows, lambda r: r["members"], "p99", "members in the trip",
                  "p99 delivery latency (ms)")  # fmt: skip
    return [*out, "", plot, ""]


def _s2(rows: list[dict]) -> list[str]:
    out = [
        "### S2: highest sustained deliveries per second with p99 under 100 ms",
        "",
        "| app | members | edits/s | deliveries/s | p99 ms | vs raw | vs channels |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    best = {r["app"]: r["best"] for r in rows if r.get("summary")}
    for app, row in best.items():
        if row is None:
            out.append(f"| {app} | - | none passed | - | - | - | - |")
            continue
        raw = best.get("raw")
        plain = best.get("channels")
        out.append(
            f"| {app} | {row['members']} | {row['rate']:g} | {row['deliveries_per_s']:.0f} | "
            f"{row['p99']:.1f} | "
            f"{_ratio(row['deliveries_per_s'], raw and raw['deliveries_per_s'])} | "
            f"{_ratio(row['deliveries_per_s'], plain and plain['deliveries_per_s'])} |"
        )

    plot = _lines("bench-s2", rows, lambda r: r["rate"] * r["members"], "p99",
                  "offered deliveries per second", "p99 latency (ms)", hline=100)  # fmt: skip
    return [*out, "", plot, ""]


def _bars(name: str, rows: list[dict], key: str, label: str, scale: float = 1.0) -> str:
    def draw(ax: Any) -> None:
        apps = [r["app"] for r in rows]
        ax.bar(apps, [r[key] / scale for r in rows], color=[COLORS.get(a, "grey") for a in apps],
               label=label)  # fmt: skip
        ax.set_ylabel(label)

    return _plot(name, draw)


def _s3(rows: list[dict]) -> list[str]:
    raw = _by(rows, app="raw")
    plain = _by(rows, app="channels")
    out = [
        "### S3: server memory per idle authenticated connection",
        "",
        "| app | connections | KiB per connection | vs raw | vs channels |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        per = r["bytes_per_connection"]
        out.append(
            f"| {r['app']} | {r['connections']} | {per / 1024:.1f} | "
            f"{_ratio(per, raw and raw['bytes_per_connection'])} | "
            f"{_ratio(per, plain and plain['bytes_per_connection'])} |"
        )
    return [
        *out,
        "",
        _bars("bench-s3", rows, "bytes_per_connection", "KiB per connection", 1024),
        "",
    ]


def _s4(rows: list[dict]) -> list[str]:
    raw = _by(rows, app="raw")
    plain = _by(rows, app="channels")
    out = [
        "### S4: authenticated connections per second in a connect storm",
        "",
        "| app | connected | errors | refused and tried again | per second | vs raw | "
        "vs channels |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| {r['app']} | {r['connected']} | {r['errors']} | "
            f"{r.get('refused_and_retried', 0)} | {r['per_second']:.0f} | "
            f"{_ratio(r['per_second'], raw and raw['per_second'])} | "
            f"{_ratio(r['per_second'], plain and plain['per_second'])} |"
        )
    return [*out, "", _bars("bench-s4", rows, "per_second", "connects per second"), ""]


def _s5(rows: list[dict]) -> list[str]:
    counts = sorted({r["processes"] for r in rows})
    out = [
        f"### S5: fan-out over {', '.join(map(str, counts))} server processes behind nginx "
        f"({rows[0]['members']:,} members, 10 edits/s)",
        "",
        "Server CPU is every daphne process's; nginx's is the proxy's own; Redis is the run's own "
        "redis-server, net of an idle stretch of the same length. Its CPU per edit here rests on a "
        "few milliseconds of CPU (the kernel counts it in ticks): indicative only; the projection "
        "below takes S6's and the calibration's.",
        "",
        "| app | processes | delivered | p50 ms | p99 ms | server CPU us/delivery | nginx CPU "
        "us/delivery | Redis CPU us/edit | Redis bytes out/edit | p99 vs raw |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        raw = _by(rows, app="raw", processes=r["processes"])
        out.append(
            f"| {r['app']} | {r['processes']} | {r['delivered']:.1%} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['cpu_us_per_delivery']:.0f} | "
            f"{_num(r.get('proxy_cpu_us_per_delivery'))} | "
            f"{_num(r.get('redis_cpu_us_per_edit'))} | "
            f"{_num(r.get('redis_bytes_out_per_edit'))} | "
            f"{_ratio(r['p99'], raw and raw['p99'])} |"
        )

    def draw(ax: Any) -> None:
        for app in COLORS:
            mine = [r for r in rows if r.get("app") == app]
            if not mine:
                continue
            xs = [r["processes"] for r in mine]
            ax.plot(xs, [r["cpu_us_per_delivery"] for r in mine], marker="o", label=f"{app} daphne",
                    color=COLORS[app])  # fmt: skip
            if any(r.get("proxy_cpu_us_per_delivery") is not None for r in mine):
                ax.plot(xs, [r.get("proxy_cpu_us_per_delivery") or 0 for r in mine], marker="s",
                        linestyle="--", label=f"{app} nginx", color=COLORS[app])  # fmt: skip
        ax.set_xticks(counts)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("server processes behind nginx")
        ax.set_ylabel("CPU per delivery (us)")

    return [*out, "", _plot("bench-s5", draw), ""]


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def _s6(rows: list[dict]) -> list[str]:
    direct = rows[-1]["edits_per_second"]
    out = [
        "### S6: persisted edits per second, end to end",
        "",
        "8 closed-loop editors, one trip each; the baseline calls the same service directly from 8",
        "threads (no socket, no server).",
        "",
        "| path | edits/s | vs direct |",
        "| --- | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| {r['path']} | {r['edits_per_second']:.0f} | "
            f"{_ratio(r['edits_per_second'], direct)} |"
        )
    costs = [r for r in rows if r.get("postgres")]
    if costs:
        out += [
            "",
            "What one edit over a socket costs the stores (PostgreSQL: this database's backends, "
            "CPU from /proc; WAL is cluster-wide, so other databases' writes count too):",
            "",
            "| path | PostgreSQL CPU us/edit | rows inserted | rows updated | transactions | "
            "WAL bytes | Redis CPU us/edit | Redis calls/edit |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in costs:
            pg = r["postgres"]
            calls = r.get("redis_calls_per_edit") or {}
            listed = ", ".join(f"{k} {v:g}" for k, v in sorted(calls.items()) if v >= 0.05)
            out.append(
                f"| {r['path']} | {pg['backend_cpu_us_per_edit']:.0f} | "
                f"{pg['inserts_per_edit']:.2f} | {pg['updates_per_edit']:.2f} | "
                f"{pg['commits_per_edit']:.2f} | {pg['wal_bytes_per_edit']:,.0f} | "
                f"{r['redis_cpu_us_per_edit']:.0f} | {listed} |"
            )

    def draw(ax: Any) -> None:
        ax.bar([r["path"] for r in rows], [r["edits_per_second"] for r in rows], label="edits/s")
        ax.set_ylabel("edits per second")

    return [*out, "", _plot("bench-s6", draw), ""]


def _s7(rows: list[dict]) -> list[str]:
    first = rows[0]
    out = [
        f"### S7: reconnect storm on live traffic ({first['members']:,} members on 2 processes, "
        f"{first['rate']:g} edits/s throughout, one process killed with SIGKILL)",
        "",
        "`survivor`: the killed process's members reconnect to the other one; `restart`: to "
        "either, the killed one started again on its port. Back: from the kill until the last "
        "moved member had its `resume` answered and every `seq` up to the newest it had seen. "
        "Every member checks its stream by `seq`, stayers and movers alike: lost (never arrived "
        "although a later one did), undelivered (after the newest it got, still missing 15 s "
        "after the last edit), duplicates, out of order (on a live socket: live events that "
        "cross a `resume` in flight are in order by the protocol and not counted).",
        "",
        "| app | variant | moved | all back s | median back s | attempts | refusals | lost | "
        "undelivered | duplicates | out of order | resyncs | stayers' p99 "
        "before ms | during ms | during / before |",
        "|" + " --- |" * 15,
    ]
    for r in rows:
        refusals = ", ".join(f"{k} {v}" for k, v in sorted(r["refusals"].items())) or "0"
        back = r["all_back_s"]
        out.append(
            f"| {r['app']} | {r['variant']} | {r['moved']} | "
            f"{'not all' if back is None else f'{back:.1f}'} | {_num(r['caught_p50_s'], 1)} | "
            f"{r['attempts']} | {refusals} | {r['lost']} | {r.get('undelivered', 0)} | "
            f"{r['duplicates']} | {r.get('reordered', 0)} | "
            f"{r['resyncs']} | "
            f"{r['p99_before']:.0f} | {r['p99_storm']:.0f} | "
            f"{_num(r['p99_ratio'], 2)}x |"
        )

    def draw(ax: Any) -> None:
        right = ax.twinx()
        for i, r in enumerate(rows):
            line = r.get("timeline") or {}
            if not line.get("t"):
                continue
            style = ["-", "--", ":"][i % 3]
            label = f"{r['app']} {r['variant']}"
            ax.plot(line["t"], line["p99"], linestyle=style, color="#1f77b4",
                    label=f"{label}: stayers' p99")  # fmt: skip
            right.plot(line["t"], [c * 100 for c in line["caught"]], linestyle=style,
                       color="#ff7f0e", label=f"{label}: moved members back")  # fmt: skip
        ax.axvline(0, color="grey", linewidth=1)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds since the kill")
        ax.set_ylabel("stayers' p99 per 0.5 s (ms)")
        right.set_ylabel("moved members back and caught up (%)")
        right.set_ylim(0, 105)
        right.legend(fontsize=7, loc="center right")

    return [*out, "", _plot("bench-s7", draw), ""]


def _c10k(rows: list[dict]) -> list[str]:
    raw = _by(rows, app="raw")
    first = rows[0]
    out = [
        f"### C10k: {first['sockets']:,} idle authenticated trip sockets on one process",
        "",
        f"Heartbeat every {first['heartbeat_seconds']:g} s (REALTIME_HEARTBEAT_SECONDS), idle "
        f"CPU measured over {first['idle_seconds']:g} s; then the same sockets are the members "
        f"of one trip receiving {first['fanout']['rate']:g} edit/s.",
        "",
        "| app | connected | connect s | KiB per connection | vs raw | idle CPU (% of a core) | "
        "heartbeats answered | WebSocket pings answered | CPU us per heartbeat above raw | "
        "Redis calls/s idle | delivered | p99 ms | p99 vs raw |",
        "|" + " --- |" * 13,
    ]
    for r in rows:
        fan = r["fanout"]
        above = None  # what our heartbeat costs beyond daphne's own idle work (the raw app's)
        if raw is not None and r is not raw and r["heartbeats"]:
            above = (r["idle_cpu_per_s"] - raw["idle_cpu_per_s"]) * r["idle_seconds"]
            above = above / r["heartbeats"] * 1e6
        out.append(
            f"| {r['app']} | {r['connected']:,} | {r['connect_seconds']:.0f} | "
            f"{r['bytes_per_connection'] / 1024:.1f} | "
            f"{_ratio(r['bytes_per_connection'], raw and raw['bytes_per_connection'])} | "
            f"{r['idle_cpu_per_s'] * 100:.1f} | {r['heartbeats']:,} | {r['protocol_pings']:,} | "
            f"{_num(above)} | {r['redis_idle_calls_per_s']:.2f} | "
            f"{fan['delivered']:.1%} | {fan['p99']:.0f} | "
            f"{_ratio(fan['p99'], raw and raw['fanout']['p99'])} |"
        )

    def draw_all() -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        IMG.mkdir(parents=True, exist_ok=True)
        fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.0), dpi=100)
        apps = [r["app"] for r in rows]
        colors = [COLORS.get(a, "grey") for a in apps]
        panels = [
            ([r["bytes_per_connection"] / 1024 for r in rows], "KiB per connection"),
            ([r["idle_cpu_per_s"] * 100 for r in rows], "idle CPU (% of a core)"),
            ([r["fanout"]["p99"] for r in rows], "p99 at 1 edit/s (ms)"),
        ]
        for ax, (values, label) in zip(axes, panels, strict=True):
            ax.bar(apps, values, color=colors)
            ax.set_title(label, fontsize=9)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(IMG / "bench-c10k.png")
        plt.close(fig)
        return "![bench-c10k](img/bench-c10k.png)"

    return [*out, "", draw_all(), ""]


def _costs(results: dict[str, Any]) -> list[str]:
    """The measured unit costs, and where one Redis primary or one PostgreSQL becomes the limit
    (docs/performance.md, "Projection to many hosts", says how)."""
    s4 = _by(results.get("s4", []), app="tripsage")
    s5 = [r for r in results.get("s5", []) if r.get("app") == "tripsage"]
    s6 = next((r for r in results.get("s6", []) if r.get("path") == "socket (tripsage)"), None)
    c10k = _by(results.get("c10k", []), app="tripsage")
    publish = results.get("redis_publish")
    if not (s5 and s6 and s6.get("postgres") and publish):
        return []
    pg = s6["postgres"]
    delivery = sum(r["cpu_us_per_delivery"] for r in s5) / len(s5)
    per_sub = max(0.0, publish["per_subscriber_us"])
    edit_1 = s6["redis_cpu_us_per_edit"]  # one process subscribed to each trip
    bytes_per_process = _slope(
        [r["processes"] for r in s5], [r.get("redis_bytes_out_per_edit") or 0 for r in s5]
    )
    calls = ", ".join(
        f"{k} {v:g}" for k, v in sorted((s6.get("redis_calls_per_edit") or {}).items()) if v >= 0.05
    )
    counts = " / ".join(str(r["processes"]) for r in s5)
    server = " / ".join(_num(r["cpu_us_per_delivery"]) for r in s5)
    proxy = " / ".join(_num(r.get("proxy_cpu_us_per_delivery")) for r in s5)
    out = [
        "### Unit costs (tripsage) and the projection they give",
        "",
        "| cost | measured | from |",
        "| --- | --- | --- |",
        f"| server CPU per delivery, {counts} processes | {server} us | S5 |",
        f"| nginx CPU per delivery | {proxy} us | S5 |",
        f"| Redis calls per edit | {calls} | S6 |",
        f"| Redis CPU per edit (one process subscribed to the trip) | {edit_1:.0f} us | S6 |",
        f"| Redis CPU per PUBLISH: base + per subscribed process | {publish['base_us']:.1f} + "
        f"{publish['per_subscriber_us']:.1f} us | calibration, {publish['size']}-byte messages |",
        f"| Redis bytes out per edit per subscribed process | {bytes_per_process:.0f} | S5 |",
    ]
    if s4 is not None:
        out.append(
            f"| Redis CPU / calls per connect | {s4['redis_cpu_us_per_connect']:.0f} us / "
            f"{s4['redis_calls_per_connect']:.1f} | S4 |"
        )
        if s4.get("postgres_cpu_us_per_connect") is not None:
            out.append(
                f"| PostgreSQL CPU per connect | {s4['postgres_cpu_us_per_connect']:.0f} us | S4 |"
            )
    if c10k is not None:
        thousands = max(1, c10k["connected"]) / 1000
        out.append(
            f"| 1,000 idle sockets: server CPU, Redis calls per second | "
            f"{c10k['idle_cpu_per_s'] / thousands * 1e3:.1f} ms, "
            f"{c10k['redis_idle_calls_per_s'] / thousands:.2f} | C10k "
            f"(heartbeat every {c10k['heartbeat_seconds']:g} s) |"
        )
    out += [
        f"| PostgreSQL CPU per edit | {pg['backend_cpu_us_per_edit']:.0f} us | S6 |",
        f"| PostgreSQL writes per edit | {pg['inserts_per_edit']:.2f} rows inserted, "
        f"{pg['updates_per_edit']:.2f} updated, {pg['commits_per_edit']:.2f} transactions | S6 |",
        "",
        "Edits per second at which one store's CPU is full, against how many server processes "
        "hold members of each edited trip (k): Redis does all its work on one core; PostgreSQL "
        "is given per core. Server processes: how many the same edits keep fully busy when each "
        "reaches 100 online members.",
        "",
        "| processes per trip (k) | Redis CPU us/edit | edits/s at one Redis core | edits/s per "
        "PostgreSQL core | server processes busy at the Redis limit (100 members/edit) | "
        "first limit |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    pg_limit = 1e6 / pg["backend_cpu_us_per_edit"] if pg["backend_cpu_us_per_edit"] else 0
    for k in (1, 2, 4, 16, 64):
        redis_us = edit_1 + (k - 1) * per_sub
        redis_limit = 1e6 / redis_us
        processes = redis_limit * 100 * delivery / 1e6
        first = "Redis" if redis_limit < pg_limit else "PostgreSQL (one core)"
        out.append(
            f"| {k} | {redis_us:.0f} | {redis_limit:,.0f} | {pg_limit:,.0f} | "
            f"{processes:,.0f} | {first} |"
        )
    return [*out, ""]


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return ys[0] if ys else 0.0
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def render(results: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [
        START,
        "",
        f"Generated by `bench/harness.py` ({results['mode']} mode, {results['started']}, "
        f"{results['seconds']:.0f} s). Machine: {results['machine']['cpus']} CPUs, "
        f"{results['machine']['platform']}; database: {results['database']}. {versions}.",
        "",
    ]
    for key, render_ in (
        ("s1", _s1),
        ("s2", _s2),
        ("s3", _s3),
        ("s4", _s4),
        ("s5", _s5),
        ("s6", _s6),
        ("s7", _s7),
        ("c10k", _c10k),
    ):
        if results.get(key):
            lines += render_(results[key])
    lines += _costs(results)
    lines.append(END)
    return "\n".join(lines)


def write(results: dict[str, Any]) -> None:
    text = DOC.read_text()
    block = render(results)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(head + block + tail)
    else:
        DOC.write_text(text.rstrip() + "\n\n## Latest harness run\n\n" + block + "\n")
