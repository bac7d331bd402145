"""tripsage.websocket_failures: daphne's sockets fail with a close frame, not a dropped TCP."""

from __future__ import annotations

from daphne.ws_protocol import WebSocketFactory

from tripsage import websocket_failures


def test_daphnes_factory_fails_connections_with_a_close_frame_after_install() -> None:
    assert websocket_failures.install()
    assert websocket_failures.install()  # twice changes nothing more
    factory = WebSocketFactory(server_class=None)
    assert factory.failByDrop is False
    factory.setProtocolOptions(maxFramePayloadSize=1024 * 1024)  # as daphne's Server.run does
    assert factory.failByDrop is False
    factory.resetProtocolOptions()
    assert factory.failByDrop is False
