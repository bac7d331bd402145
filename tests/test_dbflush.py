"""The test database's flush is retried after a deadlock, and only after one (tests/dbflush.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError
from django.core.management.commands import flush

from tests.dbflush import ATTEMPTS, retrying_deadlocks


def failing(causes: list[Exception]) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def handle(self: Any, **options: Any) -> str:
        calls.append(1)
        if causes:
            cause = causes.pop(0)
            raise CommandError("Database test_test couldn't be flushed.") from cause
        return "flushed"

    return handle, calls


def test_a_flush_that_lost_a_deadlock_is_tried_again() -> None:
    handle, calls = failing([RuntimeError("deadlock detected\nDETAIL: Process 1 waits ...")] * 2)
    assert retrying_deadlocks(handle)(None) == "flushed"
    assert len(calls) == 3


def test_any_other_flush_failure_is_raised_at_once() -> None:
    handle, calls = failing([RuntimeError('relation "auth_user" does not exist')])
    with pytest.raises(CommandError):
        retrying_deadlocks(handle)(None)
    assert len(calls) == 1


def test_a_deadlock_every_time_is_raised_after_the_last_attempt() -> None:
    handle, calls = failing([RuntimeError("deadlock detected")] * (ATTEMPTS + 1))
    with pytest.raises(CommandError):
        retrying_deadlocks(handle)(None)
    assert len(calls) == ATTEMPTS


def test_the_suite_flushes_through_the_retry() -> None:
    assert flush.Command.handle.__name__ == "handle_retrying"
