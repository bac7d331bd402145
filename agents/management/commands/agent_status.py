"""`manage.py agent_status <run_id> [--state S] [--progress N] [--step TEXT] [--message TEXT]`:
report an agent run's status from a deployment's scripts; prints the run as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents import selectors, services
from agents.models import AgentRun
from agents.payloads import run_payload
from collaboration.errors import CollaborationError


def _progress(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise CommandError(f"--progress {raw!r} is not a whole number (0-100).") from None


class Command(BaseCommand):
    help = (
        "Report an agent run's state, progress, step or message (subscribers on "
        "/ws/agent-status/ see it at once) and print the run as JSON. With no option, only print."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int, help="the agent run's id")
        parser.add_argument("--state", choices=AgentRun.State.values)
        parser.add_argument("--progress", type=str, help="0-100")
        parser.add_argument("--step", help="what the agent is doing now")
        parser.add_argument("--message", help="a status line, or what went wrong")

    def handle(self, *args: Any, **options: Any) -> None:
        changes = {
            name: options[name]
            for name in ("state", "progress", "step", "message")
            if options[name] is not None
        }
        if "progress" in changes:
            changes["progress"] = _progress(changes["progress"])
        try:
            if changes:
                run = services.agent_run_update(run_id=options["run_id"], **changes)
            else:
                run = selectors.run_by_id(run_id=options["run_id"])
        except CollaborationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(json.dumps(run_payload(run), indent=2))
