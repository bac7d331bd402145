"""autobahn's debug log arguments, formatted only when a debug line is written.

autobahn builds the arguments of its `log.debug` calls eagerly, whether or not debug logging is
on: at every connection `pformat` of its ~40 options and of the transport's details, and at every
frame received or sent `hltype`/`hlval` (a qualified name and values, coloured with click). About
6 % of the server's CPU in a connect storm and a part of every message's cost (bench S4, S7;
py-spy). `install()` gives the two modules that do it (autobahn.websocket.protocol and
autobahn.twisted.websocket) versions of those three functions that return a `Lazy`, which txaio
turns into text (`format()`) only for a debug line that is emitted.

Only for the autobahn version of requirements.txt (realtime.direct.TESTED_VERSIONS), whose every
use of the three in those modules is a keyword argument of a log call (tests check the text is
the same); under any other version nothing is replaced (logged once) and autobahn runs as shipped.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from pprint import pformat
from typing import Any

logger = logging.getLogger(__name__)


class Lazy:
    """`function(*args, **kwargs)` as text, computed when the object is formatted."""

    __slots__ = ("args", "function", "kwargs")

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.function = function
        self.args = args
        self.kwargs = kwargs

    def __str__(self) -> str:
        return str(self.function(*self.args, **self.kwargs))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def lazy(function: Callable[..., Any]) -> Callable[..., Lazy]:
    def deferred(*args: Any, **kwargs: Any) -> Lazy:
        return Lazy(function, *args, **kwargs)

    deferred.__name__ = deferred.__qualname__ = f"lazy_{function.__name__}"
    return deferred


def install() -> bool:
    """Make autobahn's debug arguments lazy; False (and nothing changed) under an autobahn this
    was not tested with."""
    from autobahn import util
    from autobahn.twisted import websocket as twisted_websocket
    from autobahn.websocket import protocol

    from realtime.direct import TESTED_VERSIONS

    version = importlib.metadata.version("autobahn")
    if version != TESTED_VERSIONS["autobahn"]:
        logger.warning(
            "autobahn %s is not the tested %s: its debug log arguments stay eager",
            version,
            TESTED_VERSIONS["autobahn"],
        )
        return False
    # Timings.__str__ (detailed timings, off by default) must return a str: it keeps the real one.
    protocol.Timings.__str__ = lambda self: pformat(self._timings)  # type: ignore[method-assign]
    protocol.pformat = lazy(pformat)  # type: ignore[assignment]
    for module in (protocol, twisted_websocket):
        module.hltype = lazy(util.hltype)  # type: ignore[attr-defined]
        module.hlval = lazy(util.hlval)  # type: ignore[attr-defined]
    return True
