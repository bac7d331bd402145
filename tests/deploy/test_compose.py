"""docker-compose.yml, the Dockerfile and the nginx configuration, checked without Docker: the
proxy is the one published port, web scales by replicas, every service has a health check, and
X-Forwarded-* comes from the proxy alone, trusted from its network alone."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.cluster import Cluster
from tripsage.settings import base

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def default_of(value: str) -> str:
    """The value compose uses when the variable is unset: `${NAME:-default}` -> default."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", str(value))
    return match[1] if match else str(value)


def test_the_proxy_is_the_only_service_with_published_ports(compose):
    services = compose["services"]
    published = {
        name
        for name, service in services.items()
        if service.get("ports") and not service.get("profiles")
    }
    assert published == {"nginx"}
    assert all(port.endswith(":8080") for port in services["nginx"]["ports"])
    # The optional monitoring services (profile `monitoring`) listen on the host's loopback only.
    for name, service in services.items():
        if service.get("profiles"):
            assert service["profiles"] == ["monitoring"], name
            assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), name


def test_web_scales_by_replicas_not_by_copied_services(compose):
    services = compose["services"]
    web = services["web"]
    assert int(default_of(web["deploy"]["replicas"])) == 3
    assert "ports" not in web and "container_name" not in web
    # One service runs the image's daphne (no command of its own): no web-1, web-2 copies.
    servers = [name for name, s in services.items() if s.get("build") and not s.get("command")]
    assert servers == ["web"]


def test_every_long_running_service_has_a_health_check(compose):
    services = compose["services"]
    one_shot = {
        name
        for name, service in services.items()
        if service.get("restart") == "no"
        and any(
            other.get("depends_on", {}).get(name, {}).get("condition")
            == "service_completed_successfully"
            for other in services.values()
        )
    }
    assert one_shot == {"migrate"}
    for name, service in services.items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert services["web"]["healthcheck"]["test"][-2:] == ["deploy.healthcheck", "8000"]
    assert (ROOT / "deploy" / "healthcheck.py").exists()


def test_web_trusts_forwarding_headers_from_the_compose_network_only(compose):
    env = compose["services"]["web"]["environment"]
    trusted = default_of(env["TRUSTED_PROXIES"])
    subnets = [default_of(c["subnet"]) for c in compose["networks"]["tripsage"]["ipam"]["config"]]
    assert trusted and [trusted] == subnets
    assert ipaddress.ip_network(trusted).is_private
    assert compose["services"]["web"]["networks"] == ["tripsage"]


def test_web_gets_secrets_apart_and_redis_through_the_sentinels(compose):
    services = compose["services"]
    env = services["web"]["environment"]
    assert env["DJANGO_SETTINGS_MODULE"] == "tripsage.settings.production"
    # Required, with no default: compose refuses to start without them.
    assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert env["JWT_SIGNING_KEY"].startswith("${JWT_SIGNING_KEY:?")
    assert env["DATABASE_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert env["DATABASE_URL"] == "postgres://tripsage@postgres:5432/tripsage"  # no password
    assert default_of(env["PUBLIC_URL"]) == "http://localhost:8080"
    sentinels = [entry.split(":")[0] for entry in env["REDIS_SENTINELS"].split(",")]
    assert sentinels == ["sentinel-1", "sentinel-2", "sentinel-3"]
    assert env["REDIS_SENTINEL_MASTER"] == "tripsage"
    for name in sentinels:
        script = "\n".join(services[name]["command"])
        for line in ("sentinel resolve-hostnames yes", "sentinel announce-hostnames yes",
                     "sentinel monitor tripsage redis 6379 2"):  # fmt: skip
            assert line in script, (name, line)
    assert "--replicaof" in services["redis-replica"]["command"]
    migrate = services["migrate"]
    assert "ensure_admin" in " ".join(migrate["command"])
    assert migrate["environment"]["DJANGO_SUPERUSER_PASSWORD"].startswith(
        "${DJANGO_SUPERUSER_PASSWORD:?"
    )


def test_the_image_runs_daphne_as_a_user_without_privileges_and_without_proxy_headers():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "daphne" in dockerfile and "--proxy-headers" not in dockerfile


def test_no_proxy_headers_flag_anywhere_a_deployer_would_copy_it_from():
    places = [ROOT / "Dockerfile", ROOT / "docker-compose.yml", ROOT / "Makefile",
              ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
              *(ROOT / "deploy").rglob("*.*")]  # fmt: skip
    for place in places:
        assert "--proxy-headers" not in place.read_text(), place


def test_the_nginx_files_compose_mounts_exist_and_include_each_other(compose):
    mounts = {}
    for volume in compose["services"]["nginx"]["volumes"]:
        source, target = volume.split(":")[:2]
        assert (ROOT / source).is_file(), source
        mounts[target] = ROOT / source
    site = mounts["/etc/nginx/conf.d/default.conf"].read_text()
    included = re.findall(r"include\s+(\S+);", site)
    assert included and all(path in mounts for path in included)


def test_both_topologies_overwrite_x_forwarded_for_and_outwait_the_heartbeat():
    text = (ROOT / "deploy" / "nginx" / "tripsage.conf").read_text()
    shared = "\n".join(line.partition("#")[0] for line in text.splitlines())  # no comments
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in shared
    assert "$proxy_add_x_forwarded_for" not in shared and "$http_x_forwarded" not in shared
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in shared
    ws = re.search(r"location /ws/ \{(.*?)\}", shared, flags=re.DOTALL)
    assert ws
    timeouts = [int(t) for t in re.findall(r"proxy_read_timeout (\d+)s;", ws[1])]
    assert timeouts and timeouts[0] > base.REALTIME_HEARTBEAT_TIMEOUT_SECONDS
    local = Cluster(processes=2, port=1, migrate=False, seed=False, say=lambda t: None)
    try:
        for site in [(ROOT / "deploy" / "nginx" / "compose.conf").read_text(), local.nginx_conf()]:
            assert "least_conn;" in site
            assert "tripsage.conf" in site
    finally:
        local.stop()
