"""tripsage.autobahn_debug: autobahn's debug log arguments, built only when logged."""

from __future__ import annotations

from pprint import pformat

from autobahn import util
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol

from tripsage import autobahn_debug
from tripsage.autobahn_debug import Lazy


def test_the_served_application_makes_autobahns_debug_arguments_lazy():
    import tripsage.asgi  # noqa: F401  # what daphne loads installs it

    assert autobahn_debug.install()
    for module in (protocol, twisted_websocket):
        assert isinstance(module.hltype(test_nothing_is_formatted_until_the_line_is_written), Lazy)
        assert isinstance(module.hlval(3), Lazy)
    assert isinstance(protocol.pformat([1]), Lazy)


def test_nothing_is_formatted_until_the_line_is_written():
    class Counted:
        formatted = 0

        def __repr__(self) -> str:
            Counted.formatted += 1
            return "counted"

    lazy = protocol.pformat([("option", Counted(), "Factory")])
    assert Counted.formatted == 0
    assert f"{lazy}" == "[('option', counted, 'Factory')]"
    assert Counted.formatted == 1


def test_the_text_is_autobahns_own():
    """What a debug line shows is what autobahn's eager functions make."""
    method = twisted_websocket.WebSocketServerProtocol.dataReceived
    assert "{func}: {peer} {n}".format(
        func=twisted_websocket.hltype(method), peer=protocol.hlval("tcp:1.2.3.4:5"), n=1
    ) == "{}: {} 1".format(util.hltype(method), util.hlval("tcp:1.2.3.4:5"))
    options = [("openHandshakeTimeout", 5, "WebSocketServerFactory")]
    assert str(protocol.pformat(options)) == pformat(options)


def test_timings_still_print_as_text():
    timings = protocol.Timings()
    timings.track("onOpen")
    assert isinstance(str(timings), str) and "onOpen" in str(timings)
