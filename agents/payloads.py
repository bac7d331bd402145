"""How an agent run looks on the wire: socket events, REST bodies and the management command."""

from __future__ import annotations

from typing import Any

from agents.models import AgentRun
from collaboration.payloads import user_ref
from protocol import iso


def run_payload(run: AgentRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "agent": run.agent,
        "state": run.state,
        "progress": run.progress,
        "step": run.step,
        "message": run.message,
        "trip_id": run.trip_id,
        "owner": user_ref(run.owner),
        "version": run.version,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
    }
