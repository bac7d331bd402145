"""The registry of a process's live sockets (realtime.connections): by user and by id, with one or
several sockets per user, and the periodic re-check closing a deactivated user's sockets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from metrics import selectors as metrics_selectors
from metrics import services as metrics_services
from metrics.models import ConnectionSession
from realtime.connections import Connections
from tests import factories


@dataclass(eq=False)
class _Socket:
    """What the registry reads of a consumer, and what it calls on one."""

    user: Any
    connection_id: str
    revoked: list[dict[str, Any]] = field(default_factory=list)

    closed_by_operator: bool = False

    async def realtime_user_revoked(self, event: dict[str, Any]) -> None:
        self.revoked.append(event)

    async def close_by_operator(self) -> None:
        self.closed_by_operator = True


@dataclass
class _User:
    pk: int


@pytest.fixture
async def registry() -> AsyncIterator[Connections]:
    found = Connections()
    yield found
    for task in (found.task, found.checker):
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def test_a_users_sockets_are_found_while_they_live(registry: Connections) -> None:
    a1, a2, b = _Socket(_User(1), "c-1"), _Socket(_User(1), "c-2"), _Socket(_User(2), "c-3")
    for socket in (a1, a2, b):
        await registry.register(socket)
    assert set(registry.of_user(1)) == {a1, a2}
    assert registry.of_user(2) == [b]
    assert registry.find("c-2") is a2
    registry.unregister(a1)
    assert registry.of_user(1) == [a2]
    await registry.register(a1)  # back, and a socket registered twice counts once
    await registry.register(a1)
    assert sorted(s.connection_id for s in registry.of_user(1)) == ["c-1", "c-2"]
    for socket in (a1, a2):
        registry.unregister(socket)
        registry.unregister(socket)  # twice: nothing more happens
    assert registry.of_user(1) == [] and 1 not in registry.by_user
    assert registry.find("c-1") is None and registry.of_user(2) == [b]


@pytest.mark.django_db(transaction=True)
async def test_the_recheck_closes_every_socket_of_a_deactivated_user_and_no_other(
    registry: Connections, database_thread: Any
) -> None:
    alice = await sync_to_async(factories.make_user)("alice")
    bob = await sync_to_async(factories.make_user)("bob")
    sockets = [
        _Socket(_User(alice.pk), "a-1"),
        _Socket(_User(alice.pk), "a-2"),
        _Socket(_User(bob.pk), "b-1"),
    ]
    for socket in sockets:
        await registry.register(socket)
    # Without saving the instance: no signal publishes it, only the database says so.
    await sync_to_async(type(alice).objects.filter(pk=alice.pk).update)(is_active=False)
    await registry.recheck()
    assert [len(socket.revoked) for socket in sockets] == [1, 1, 0]


def _open_sessions(*connection_ids: str) -> None:
    now = timezone.now()
    for connection_id in connection_ids:
        ConnectionSession.objects.create(
            connection_id=connection_id,
            username="alice",
            connection_type="trip_collaboration",
            process="elsewhere:1",
            connected_at=now,
            last_activity=now,
            last_seen=now,
        )


@pytest.mark.django_db(transaction=True)
async def test_the_recheck_closes_the_sockets_an_operator_asked_to_close(
    registry: Connections, database_thread: Any
) -> None:
    """The disconnect's message may never arrive (Redis away): the re-check finds the request
    among those made since the process started, and closes this process's sockets only."""
    here, there = _Socket(_User(1), "c-here"), _Socket(_User(1), "c-kept")
    for socket in (here, there):
        await registry.register(socket)
    await sync_to_async(_open_sessions)("c-here", "c-kept", "c-elsewhere")
    # Marked in the database only, as when the message after it was lost.
    marked = await sync_to_async(
        ConnectionSession.objects.filter(connection_id__in=["c-here", "c-elsewhere"]).update
    )(disconnect_requested_at=timezone.now())
    assert marked == 2
    await registry.recheck()
    assert (here.closed_by_operator, there.closed_by_operator) == (True, False)


@pytest.mark.django_db(transaction=True)
def test_a_disconnect_request_is_found_by_when_it_was_made() -> None:
    _open_sessions("c-1", "c-2")
    before = timezone.now()
    assert metrics_services.request_disconnect(["c-2"]) == 1
    assert metrics_selectors.disconnects_requested(since=before) == ["c-2"]
    assert metrics_selectors.disconnects_requested(since=timezone.now()) == []
