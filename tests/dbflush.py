"""The test database's flush, retried when PostgreSQL picks it as a deadlock's victim.

Between two transactional tests Django empties every table with one TRUNCATE. A daphne server the
tests started may be writing at that moment (the metrics collector's last flush after a page
closed): the TRUNCATE's exclusive locks and the server's row locks can deadlock, PostgreSQL aborts
the TRUNCATE, the flush fails, and the next test finds the last one's users. The server's write is
over once the deadlock is broken, so the flush is simply tried again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError

ATTEMPTS = 5


def is_deadlock(error: BaseException) -> bool:
    cause = error.__cause__
    return cause is not None and "deadlock detected" in str(cause)


def retrying_deadlocks(handle: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the flush command's `handle` so that a deadlock is retried, anything else raised."""

    def handle_retrying(self: Any, **options: Any) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return handle(self, **options)
            except CommandError as error:
                if attempt == ATTEMPTS or not is_deadlock(error):
                    raise
                time.sleep(0.1 * attempt)
        return None  # not reached: the last attempt returns or raises

    return handle_retrying
