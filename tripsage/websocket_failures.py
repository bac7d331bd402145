"""daphne's sockets fail with a close frame: a frame over the 1 MiB limit is told 1009.

autobahn, under daphne, fails a WebSocket connection (a frame or message over daphne's
`--websocket-max-frame-size`/`--websocket-max-message-size`, 1 MiB by default; a protocol
violation; text that is not UTF-8) by dropping the TCP connection, its server default
`failByDrop=True`. The client then sees 1006, "abnormal closure", which it cannot tell from a
network failure, and retries the same frame. RFC 6455 (7.1.7) says an endpoint that fails an
established connection SHOULD send a close frame with the status code first; with `failByDrop`
off autobahn does: 1009 (message too big), 1002 (protocol error) or 1007 (invalid payload), then
closes after its closing handshake (at most its 1 s `closeHandshakeTimeout`). What it buffers of
the failed frame is nothing: autobahn discards the data of a failed connection.

daphne sets the factory's options itself and has no flag for this one; `install()` (from
tripsage.asgi, imported before daphne builds its factory) turns it off on daphne's factory class.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def install() -> bool:
    """Make daphne's WebSocket factory fail connections with a close frame; False (and nothing
    changed) when daphne is not installed."""
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:  # another ASGI server: its own rules
        return False
    if getattr(WebSocketFactory, "_fails_with_close_frame", False):
        return True
    reset = WebSocketFactory.resetProtocolOptions

    def reset_protocol_options(self: Any) -> None:
        reset(self)
        self.failByDrop = False

    WebSocketFactory.resetProtocolOptions = reset_protocol_options
    WebSocketFactory._fails_with_close_frame = True
    return True
