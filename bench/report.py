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
        "| app | connected | errors | per second | vs raw | vs channels |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| {r['app']} | {r['connected']} | {r['errors']} | {r['per_second']:.0f} | "
            f"{_ratio(r['per_second'], raw and raw['per_second'])} | "
            f"{_ratio(r['per_second'], plain and plain['per_second'])} |"
        )
    return [*out, "", _bars("bench-s4", rows, "per_second", "connects per second"), ""]


def _s5(rows: list[dict]) -> list[str]:
    out = [
        "### S5: cross-process fan-out (1,000 members spread over 1 and 2 server processes)",
        "",
        "| app | processes | delivered | p50 ms | p99 ms | server CPU us/delivery | p99 vs raw |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        raw = _by(rows, app="raw", processes=r["processes"])
        out.append(
            f"| {r['app']} | {r['processes']} | {r['delivered']:.1%} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['cpu_us_per_delivery']:.0f} | "
            f"{_ratio(r['p99'], raw and raw['p99'])} |"
        )

    plot = _lines("bench-s5", rows, lambda r: r["processes"], "p99", "server processes",
                  "p99 latency (ms)", log=False)  # fmt: skip
    return [*out, "", plot, ""]


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

    def draw(ax: Any) -> None:
        ax.bar([r["path"] for r in rows], [r["edits_per_second"] for r in rows], label="edits/s")
        ax.set_ylabel("edits per second")

    return [*out, "", _plot("bench-s6", draw), ""]


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
    ):
        if key in results:
            lines += render_(results[key])
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
