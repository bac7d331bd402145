"""Agent status: `/ws/agent-status/`. The user's unfinished agent runs (their own and those of
their trips) on connect, then every change; the owner may cancel a run."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

import protocol
from agents import selectors, services
from agents.payloads import run_payload
from events.aio import CATCH_UP, db
from events.groups import agents_trip_group, agents_user_group
from protocol import ConnectionType
from realtime.consumers.base import RealtimeConsumer

# Runs whose last version a socket remembers, to drop repeats and stale states; beyond this the
# oldest is forgotten (at worst a client sees a state it already has once more).
REMEMBERED_RUNS = 1000


def _active_runs(user: User) -> list[dict[str, Any]]:
    return [run_payload(run) for run in selectors.active_runs_for(user=user)]


def _cancel(*, run_id: int, actor: User) -> dict[str, Any]:
    return run_payload(services.agent_run_cancel(run_id=run_id, actor=actor))


class AgentStatusConsumer(RealtimeConsumer):
    """Joins the user's group and one group per trip the user is a member of at connect; a
    trip joined later is picked up on reconnect. A run arrives through both groups when its
    owner is also on its trip: each run's `version` makes the socket send it once, in order."""

    connection_type = ConnectionType.AGENT_STATUS
    client_messages = (protocol.AgentCancel,)
    instance_attributes = (
        "_trip_ids",
        "_versions",
    )  # set on a socket beside RealtimeConsumer.instance_attributes (shared keys, bench S3)

    async def on_connected(self) -> None:
        self._versions: dict[int, int] = {}
        # Join before reading the runs: a change committed in between arrives through a group
        # (after the list, as this socket handles one thing at a time) and is never lost.
        await self.join(agents_user_group(self.user.pk))
        trip_ids = await db(selectors.member_trip_ids, lane=CATCH_UP)(user=self.user)
        for trip_id in trip_ids:
            await self.join(agents_trip_group(trip_id))
        self._trip_ids = set(trip_ids)
        # Only what the joined groups will keep up to date (a trip joined a moment ago is not).
        wires = [
            run
            for run in await db(_active_runs, lane=CATCH_UP)(self.user)
            if run["owner"]["id"] == self.user.pk or run["trip_id"] in self._trip_ids
        ]
        for wire in wires:
            self._remember(wire["id"], wire["version"])
        await self.send_event(protocol.server_message("agent.runs", runs=wires))

    async def on_agent_cancel(self, message: protocol.AgentCancel) -> None:
        run = await db(_cancel)(run_id=message.run_id, actor=self.user)
        # The `agent.run` with the cancelled state follows, as for every change.
        await self.send_event(protocol.server_message("ack", request_id=message.id, run=run))

    # -- group events -------------------------------------------------------------------------

    async def agent_run(self, event: dict[str, Any]) -> None:
        run = event["run"]
        if run["version"] <= self._versions.get(run["id"], 0):
            return  # already sent (through the other group), or older than what was sent
        if run["owner"]["id"] != self.user.pk and not await self._still_member(run["trip_id"]):
            return
        self._remember(run["id"], run["version"])
        await self.send_published(event)

    async def _still_member(self, trip_id: int | None) -> bool:
        """Someone else's run reaches this socket only through a trip group; a member removed
        since connecting leaves that group and sees nothing more of the trip's runs."""
        if trip_id not in self._trip_ids:
            return False
        if await db(selectors.is_trip_member)(trip_id=trip_id, user_id=self.user.pk):
            return True
        self._trip_ids.discard(trip_id)
        group = agents_trip_group(trip_id)
        await self.channel_layer.group_discard(group, self.channel_name)
        if group in self._joined:
            self._joined.remove(group)
        return False

    def _remember(self, run_id: int, version: int) -> None:
        self._versions.pop(run_id, None)
        self._versions[run_id] = version
        if len(self._versions) > REMEMBERED_RUNS:
            del self._versions[next(iter(self._versions))]
