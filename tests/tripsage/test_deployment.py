"""docker-compose.yml gives the production settings everything they require."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_two_web_replicas_with_every_required_production_variable() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    webs = [name for name in compose["services"] if name.startswith("web")]
    assert len(webs) >= 2
    for name in webs:
        env = compose["services"][name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "tripsage.settings.production"
        for required in ("DJANGO_SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"):
            assert env.get(required), f"{name} lacks {required}"
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["DATABASE_URL"]
    ports = {compose["services"][name]["ports"][0] for name in webs}
    assert len(ports) == len(webs)  # replicas side by side, no port clash
