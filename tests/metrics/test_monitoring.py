"""Operators' side of the metrics: every query of the Grafana dashboard names a metric a real
process exposes, the Prometheus config scrapes the web processes with the token, and /metrics
answers only the addresses and the token it is configured for (metrics.access)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from asgiref.sync import sync_to_async
from django.test import Client

from tests import factories
from tests.conftest import DaphneServer
from tests.wsclient import connect, recv_type, send_json

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tripsage.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
TOKEN = "metrics-token-for-tests-0123456789abcdef"

# Series Prometheus makes itself for every target; no process exposes them.
MADE_BY_PROMETHEUS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Sampled once a socket has connected, edited, answered pings and sent a bad message.
EXERCISED = {
    "tripsage_ws_connections_open",
    "tripsage_ws_messages_received_total",
    "tripsage_ws_messages_sent_total",
    "tripsage_ws_errors_total",
    "tripsage_fanout_latency_seconds_bucket",
    "tripsage_ws_heartbeat_latency_seconds_bucket",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: not functions or aggregations (a name before
    `(`), not label matchers, ranges, `by (...)` lists, strings, numbers or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges: [5m], [$__rate_interval]
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        name, call = match.groups()
        if call or name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, and the template variables'."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                queries.append((nested["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
            queries.append((f"${variable['name']}", inner[1] if inner else text))
    return queries


def exposed_names(exposition: str) -> tuple[set[str], set[str], set[str]]:
    """The sample names of an exposition, the names it declares (`# TYPE`: a labelled counter
    no event has touched yet is declared with no sample), and the names of its histograms."""
    samples, declared, histograms = set(), set(), set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            declared.add(name)
            if kind == "histogram":
                histograms.add(name)
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return samples, declared, histograms


def missing_from(exposition: str, names: set[str]) -> set[str]:
    """The names neither sampled nor declared by the exposition (a histogram's `_bucket`,
    `_sum` and `_count` by the histogram's name)."""
    samples, declared, histograms = exposed_names(exposition)
    missing = set()
    for name in names - MADE_BY_PROMETHEUS:
        if name in samples or name in declared:
            continue
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base is not None and base in histograms:
            continue
        missing.add(name)
    return missing


def test_metric_names_are_read_out_of_promql():
    expr = (
        "histogram_quantile(0.99, sum by (le, connection_type) (rate(tripsage_fanout_latency_"
        'seconds_bucket{instance=~"$instance", job="a_b"}[$__rate_interval]))) / on (instance) '
        "group_left sum without (code) (increase(tripsage_ws_errors_total[1h] offset 5m)) "
        'or vector(0) and up{job="tripsage"} > bool 1e3'
    )
    assert metric_names(expr) == {
        "tripsage_fanout_latency_seconds_bucket",
        "tripsage_ws_errors_total",
        "up",
    }
    exposition = (
        "# TYPE tripsage_fanout_latency_seconds histogram\n"
        'tripsage_fanout_latency_seconds_bucket{le="0.1"} 1.0\n'
        "tripsage_ws_errors_total 0.0\n"
    )
    assert missing_from(exposition, metric_names(expr)) == set()
    assert missing_from(exposition, {"tripsage_ws_errors", "tripsage_fanout_latency"}) == {
        "tripsage_ws_errors",
        "tripsage_fanout_latency",
    }


def test_the_dashboard_covers_what_operators_look_at_first():
    names = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    for wanted in (
        "tripsage_ws_connections_open",
        "tripsage_ws_connections_opening",
        "tripsage_ws_connections_waiting",
        "tripsage_ws_messages_received_total",
        "tripsage_ws_messages_sent_total",
        "tripsage_ws_errors_total",
        "tripsage_rate_limit_refusals_total",
        "tripsage_fanout_latency_seconds_bucket",
        "tripsage_ws_heartbeat_latency_seconds_bucket",
        "tripsage_publish_failures_total",
        "tripsage_stream_catch_ups_total",
        "tripsage_ws_replays_total",
        "tripsage_layer_dropped_total",
    ):
        assert wanted in names, wanted
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.fixture
def fast_metrics_server(daphne_factory) -> DaphneServer:
    """A process that pings every half second, so the heartbeat histogram has samples."""
    return daphne_factory(
        "metrics-dashboard",
        REALTIME_HEARTBEAT_SECONDS="0.5",
        REALTIME_HEARTBEAT_TIMEOUT_SECONDS="10",
    )


async def _exercise(server: DaphneServer) -> None:
    """A member connects, edits (a fan-out), answers pings, and sends a bad message (an error)."""
    user = await sync_to_async(factories.make_user)(f"dash-{uuid.uuid4().hex[:8]}")
    trip = await sync_to_async(factories.make_trip)(user)
    token = await sync_to_async(factories.access_token)(user)
    ws, _ = await connect(server.ws_url, f"/ws/trips/{trip.pk}/", token)
    try:
        version = ws.snapshot["trip"]["version"]
        await send_json(
            ws,
            {
                "type": "trip.update",
                "id": "u1",
                "update_id": str(uuid.uuid4()),
                "field": "notes",
                "value": "dashboard",
                "base_version": version,
            },
        )
        await recv_type(ws, "trip.updated")
        await send_json(ws, {"type": "no.such.type", "id": "bad"})
        await recv_type(ws, "error")
        for _ in range(2):
            ping = await recv_type(ws, "ping")
            await send_json(ws, {"type": "pong", "request_id": ping["id"]})
    finally:
        await ws.close()


async def test_every_dashboard_query_names_a_metric_a_running_process_exposes(
    transactional_db, fast_metrics_server
):
    await _exercise(fast_metrics_server)

    def scrape() -> str:
        url = f"{fast_metrics_server.http_url}/metrics"
        return urllib.request.urlopen(url, timeout=10).read().decode()

    exposition = ""
    for _ in range(50):  # the fan-out and heartbeat histograms are counted as the flush runs
        exposition = await asyncio.to_thread(scrape)
        samples, _, _ = exposed_names(exposition)
        if EXERCISED <= samples:
            break
        await asyncio.sleep(0.2)
    # What the socket did shows as samples, not only declarations.
    assert EXERCISED <= exposed_names(exposition)[0], EXERCISED - exposed_names(exposition)[0]
    problems = {
        (title, expr, name)
        for title, expr in dashboard_queries()
        for name in missing_from(exposition, metric_names(expr))
    }
    assert not problems, "\n".join(f"{t}: {n} (in {e})" for t, e, n in sorted(problems))


def test_prometheus_scrapes_each_web_process_with_the_token_compose_gives_it():
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "tripsage"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    credentials_file = job["authorization"]["credentials_file"]
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["web"] and dns["type"] == "A" and dns["port"] == 8000

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "web" in services and services["web"]["environment"]["METRICS_TOKEN"].startswith(
        "${METRICS_TOKEN"
    )
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    secret = prometheus["secrets"][0]
    assert credentials_file == f"/run/secrets/{secret}"
    assert compose["secrets"][secret] == {"environment": "METRICS_TOKEN"}
    mounted = {v.split(":")[0]: v.split(":")[1] for v in prometheus["volumes"] if v.startswith(".")}
    assert mounted["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    grafana = services["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    for source in (v.split(":")[0] for v in grafana["volumes"] if v.startswith(".")):
        assert (ROOT / source).exists(), source
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


# --- Who may read /metrics.


def _get(server: DaphneServer, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"{server.http_url}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _is_exposition(body: str) -> bool:
    return "tripsage_ws_connections_open" in body or "# TYPE" in body


@pytest.fixture(scope="module")
def token_server(module_daphne_factory) -> DaphneServer:
    return module_daphne_factory("metrics-token", METRICS_TOKEN=TOKEN)


def test_the_right_bearer_token_reads_the_metrics(token_server):
    status, body = _get(token_server, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and _is_exposition(body)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, 403),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": "Bearer "}, 401),
    ],
)
def test_without_the_right_token_no_metrics(token_server, headers, expected):
    status, body = _get(token_server, headers)
    assert status == expected
    assert not _is_exposition(body)


def test_a_missing_token_is_asked_for(token_server):
    request = urllib.request.Request(f"{token_server.http_url}/metrics")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.fixture(scope="module")
def behind_proxy(module_daphne_factory) -> DaphneServer:
    """A process whose proxy is 127.0.0.1 (the tests' own address), allowing 10.9.0.0/16."""
    return module_daphne_factory(
        "metrics-allow", TRUSTED_PROXIES="127.0.0.1", METRICS_ALLOWED_IPS="10.9.0.0/16,192.0.2.7"
    )


@pytest.mark.parametrize("client", ["10.9.3.4", "192.0.2.7"])
def test_an_allowed_address_through_the_trusted_proxy_reads_the_metrics(behind_proxy, client):
    status, body = _get(behind_proxy, {"X-Forwarded-For": client})
    assert status == 200 and _is_exposition(body)


@pytest.mark.parametrize("client", ["10.8.0.1", "192.0.2.8", "not-an-address"])
def test_other_addresses_get_403_and_no_metrics(behind_proxy, client):
    status, body = _get(behind_proxy, {"X-Forwarded-For": client})
    assert status == 403 and not _is_exposition(body)


def test_the_proxy_itself_is_not_an_allowed_address(behind_proxy):
    status, body = _get(behind_proxy)  # from 127.0.0.1, not in the list
    assert status == 403 and not _is_exposition(body)


@pytest.fixture(scope="module")
def no_proxy(module_daphne_factory) -> DaphneServer:
    return module_daphne_factory("metrics-noproxy", METRICS_ALLOWED_IPS="10.9.0.0/16")


def test_a_client_cannot_claim_an_allowed_address_itself(no_proxy):
    status, body = _get(no_proxy, {"X-Forwarded-For": "10.9.3.4"})
    assert status == 403 and not _is_exposition(body)


def test_allowed_address_or_token_either_one_lets_in(daphne_factory):
    both = daphne_factory("metrics-both", METRICS_TOKEN=TOKEN, METRICS_ALLOWED_IPS="127.0.0.1")
    assert _get(both)[0] == 200
    both_elsewhere = daphne_factory(
        "metrics-both-elsewhere", METRICS_TOKEN=TOKEN, METRICS_ALLOWED_IPS="10.9.0.0/16"
    )
    assert _get(both_elsewhere)[0] == 401
    assert _get(both_elsewhere, {"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_open_in_development_closed_in_production_when_nothing_is_set(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    settings.PRODUCTION = False
    response = Client().get("/metrics")
    assert response.status_code == 200 and _is_exposition(response.content.decode())
    settings.PRODUCTION = True
    response = Client().get("/metrics")
    body = response.content.decode()
    assert response.status_code == 403 and not _is_exposition(body)
    assert "METRICS_TOKEN" in body and "METRICS_ALLOWED_IPS" in body


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN is set but only 5 characters"),
        ({"METRICS_ALLOWED_IPS": "10.0.0.0/8,prometheus"}, "METRICS_ALLOWED_IPS: 'prometheus'"),
    ],
)
def test_bad_metrics_settings_stop_start_up(env: dict[str, Any], message: str):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tripsage.settings.base", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr
