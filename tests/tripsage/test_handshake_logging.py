"""tripsage.handshake_logging: autobahn's per-connection debug text, built only when logged."""

from __future__ import annotations

from autobahn.websocket import protocol

from tripsage import handshake_logging
from tripsage.handshake_logging import LazyPformat


def test_the_served_application_makes_autobahns_debug_formatting_lazy():
    import tripsage.asgi  # noqa: F401  # what daphne loads installs it

    assert protocol.pformat is LazyPformat
    assert handshake_logging.install()


def test_nothing_is_formatted_until_the_line_is_written():
    class Counted:
        formatted = 0

        def __repr__(self) -> str:
            Counted.formatted += 1
            return "counted"

    lazy = LazyPformat([("option", Counted(), "Factory")])
    assert Counted.formatted == 0
    assert f"{lazy}" == "[('option', counted, 'Factory')]"
    assert Counted.formatted == 1


def test_timings_still_print_as_text():
    timings = protocol.Timings()
    timings.track("onOpen")
    assert isinstance(str(timings), str) and "onOpen" in str(timings)
