"""autobahn's per-connection debug lines, formatted only when a debug log is written.

autobahn's `WebSocketProtocol._connectionMade` and `startHandshake` pass `pformat(...)` of the
connection's ~40 options and of its transport details to `log.debug` at every connection, so the
text is built whether or not debug logging is on: about 6 % of the server's CPU in a connect
storm (bench S4, S7; py-spy). `install()` replaces the `pformat` those calls use with one that
returns a `LazyPformat`, which txaio formats (`str()`) only for a debug line that is emitted.

Only for the autobahn version of requirements.txt (realtime.direct.TESTED_VERSIONS); under any
other, nothing is replaced (logged once at startup) and autobahn behaves as shipped.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pprint import pformat
from typing import Any

logger = logging.getLogger(__name__)


class LazyPformat:
    """`pformat(value)`, computed when the object is formatted as text."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pformat(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def install() -> bool:
    """Make autobahn's handshake debug formatting lazy; False (and nothing changed) under an
    autobahn this was not tested with."""
    from autobahn.websocket import protocol

    from realtime.direct import TESTED_VERSIONS

    version = importlib.metadata.version("autobahn")
    if version != TESTED_VERSIONS["autobahn"]:
        logger.warning(
            "autobahn %s is not the tested %s: its handshake debug formatting stays eager",
            version,
            TESTED_VERSIONS["autobahn"],
        )
        return False
    # Timings.__str__ (detailed timings, off by default) must return a str: it keeps the real one.
    protocol.Timings.__str__ = lambda self: pformat(self._timings)  # type: ignore[method-assign]
    protocol.pformat = LazyPformat  # type: ignore[assignment]
    return True
