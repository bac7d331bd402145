"""Direct writes (realtime.direct): frames written straight to daphne's sockets arrive whole and in
order, also when the kernel's buffer is full and Twisted takes over part of the stream; and
wherever direct writes refuse a connection, its frames arrive the same way through the ASGI send."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from collaboration.services import trips
from metrics import instruments
from realtime.auth import JWTAuthMiddleware
from realtime.direct import TESTED_VERSIONS, text_frame, writer_for
from realtime.routing import websocket_urlpatterns
from tests import factories
from tests.wsclient import recv_json, recv_until, send_json
from tripsage.routing import URLRouter

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_text_frames_parse_as_rfc6455(size):
    """Read back by an independent parser (websockets', as a client reads a server's frames)."""
    text = ("é" + "x" * size)[:size]  # non-ASCII: the length is in bytes, not characters
    reader = StreamReader()
    reader.feed_data(text_frame(text))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        frame = done.value
    assert frame.opcode == Opcode.TEXT and frame.fin
    assert frame.data.decode() == text
    assert reader.at_eof() is not False  # nothing left over after the frame


async def _stalled_socket(server, path: str, token: str):
    """A client with a tiny receive buffer that reads nothing after its opening messages (its
    library stops reading past one queued message)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    host, port = server.ws_url.removeprefix("ws://").split(":")
    await asyncio.get_running_loop().sock_connect(raw, (host, int(port)))
    ws = await websockets.connect(f"{server.ws_url}{path}", sock=raw, max_queue=1)
    await send_json(ws, {"token": token})
    assert (await recv_json(ws))["type"] == "connection.established"
    assert (await recv_json(ws))["type"] == "rate_limit_status"
    assert (await recv_json(ws))["type"] == "trip.snapshot"
    return ws


def _direct_writes(server) -> dict[str, float]:
    return {
        outcome: server.metric("tripsage_ws_direct_writes_total", outcome=outcome)
        for outcome in instruments.DIRECT_WRITE_OUTCOMES
    }


def _refusals(server) -> dict[str, float]:
    """Connections without direct writes, by reason (only the reasons counted at all)."""
    counted = {
        reason: server.metric("tripsage_ws_direct_writes_disabled_total", reason=reason)
        for reason in instruments.DIRECT_WRITES_OFF_REASONS
    }
    return {reason: n for reason, n in counted.items() if n}


@pytest.mark.parametrize("direct", [True, False], ids=["direct-writes", "asgi-sends"])
async def test_a_full_socket_gets_every_event_whole_and_in_order(daphne_factory, direct):
    server = await asyncio.to_thread(
        daphne_factory,
        f"wire-{'on' if direct else 'off'}",
        REALTIME_DIRECT_WRITES="true" if direct else "false",
        REALTIME_FLOW_PING_BYTES=str(64 << 20),  # no flow pings: the stalled client answers none
        REALTIME_MAX_UNACKED_BYTES=str(64 << 20),
    )
    alice, bob, carol, trip = await sync_to_async(factories.make_crew)()
    path = f"/ws/trips/{trip.pk}/"
    stalled = await _stalled_socket(server, path, factories.access_token(bob))
    reader = await _stalled_socket(server, path, factories.access_token(carol))
    # 300 events of 20 kB (non-ASCII): 6 MB, more than the kernel buffers on loopback (at most
    # 4 MB to send here), so writes to the stalled socket end up partial and then buffered.
    values = [f"{i:03d} " + chr(0x3B1 + i % 20) * 9_990 for i in range(300)]

    for value in values:
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=alice, update_id=uuid.uuid4(), field="notes", value=value,
            base_version=1,
        )  # fmt: skip
        # The other member reads along: one stalled socket holds nobody else up.
        event = await recv_until(reader, lambda m: m["type"] == "trip.updated")
        assert event["value"] == value

    received = []
    async with asyncio.timeout(20):
        while len(received) < len(values):
            message = json.loads(await stalled.recv())
            if message["type"] == "trip.updated":
                received.append(message)
    assert [m["value"] for m in received] == values
    seqs = [m["seq"] for m in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(values)))

    counted = await asyncio.to_thread(_direct_writes, server)
    refused = await asyncio.to_thread(_refusals, server)
    if direct:
        # Written straight to the sockets, and the full one was handed to Twisted part-way.
        assert counted["sent"] > 0 and counted["partial"] > 0 and counted["declined"] > 0
        assert refused == {}
    else:
        assert counted == {"sent": 0, "partial": 0, "declined": 0}
        assert refused == {"setting": 2}  # REALTIME_DIRECT_WRITES off: both sockets
    await stalled.close()
    await reader.close()


def test_the_tested_versions_are_the_pins_and_the_installed_ones():
    """A pin bumped without TESTED_VERSIONS would silently turn direct writes off everywhere;
    the suite runs with the pins, so the tests above exercise direct writes."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, pinned, pin = line.partition("==")
        if pinned and not line.startswith("#"):
            pins[name.strip().lower()] = pin.strip()
    for name, tested in TESTED_VERSIONS.items():
        assert pins.get(name.lower()) == tested, f"requirements.txt pins {name} otherwise"
        assert version(name) == tested, f"{name} {version(name)} is installed: make install"


# -- refusals: what a client sees is the same, through the ASGI send ---------------------------

# Up to 7,600 characters, non-ASCII: longer than a fragment of 1 KiB, or than one small buffer.
VALUES = [f"{i:02d} " + chr(0x3B1 + i) * (i * 400) for i in range(20)]


async def _edit(actor, trip, value: str) -> None:
    await sync_to_async(trips.trip_update)(
        trip_id=trip.pk, actor=actor, update_id=uuid.uuid4(), field="notes", value=value,
        base_version=1,
    )  # fmt: skip


async def _every_edit_arrives_whole_and_in_order(url: str, tls: ssl.SSLContext | None = None):
    """Two members of a trip read a run of edits: each arrives once, whole, in the order of its
    seq."""
    alice, bob, carol, trip = await sync_to_async(factories.make_crew)()
    sockets = []
    for member in (bob, carol):
        ws = await websockets.connect(f"{url}/ws/trips/{trip.pk}/", ssl=tls, open_timeout=10)
        await send_json(ws, {"token": await sync_to_async(factories.access_token)(member)})
        for opening in ("connection.established", "rate_limit_status", "trip.snapshot"):
            assert (await recv_json(ws))["type"] == opening
        sockets.append(ws)
    for value in VALUES:
        await _edit(alice, trip, value)
    for ws in sockets:
        received = [await recv_until(ws, lambda m: m["type"] == "trip.updated") for _ in VALUES]
        assert [m["value"] for m in received] == VALUES
        seqs = [m["seq"] for m in received]
        assert seqs == list(range(seqs[0], seqs[0] + len(VALUES)))
        await ws.close()


async def _assert_refused(server, reason: str) -> None:
    """Both sockets were refused direct writes, for `reason`, and none was written directly."""
    assert await asyncio.to_thread(_refusals, server) == {reason: 2}
    assert await asyncio.to_thread(_direct_writes, server) == dict.fromkeys(
        instruments.DIRECT_WRITE_OUTCOMES, 0
    )


def _on_path(directory: Path) -> str:
    """PYTHONPATH for a daphne process that finds `directory` first."""
    return os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1, signed by itself: (key, certificate) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, certificate_path = directory / "key.pem", directory / "certificate.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, certificate_path


async def test_tls_terminated_by_daphne_gets_every_frame_through_the_asgi_send(
    daphne_factory, tmp_path
):
    key, certificate = _self_signed_certificate(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        tls_port = probe.getsockname()[1]
    # TLS on its own endpoint; /metrics stays on the plain one.
    server = await asyncio.to_thread(
        daphne_factory,
        "direct-tls",
        "-e",
        f"ssl:port={tls_port}:interface=127.0.0.1:privateKey={key}:certKey={certificate}",
    )
    trusting = ssl.create_default_context(cafile=str(certificate))
    await _every_edit_arrives_whole_and_in_order(f"wss://127.0.0.1:{tls_port}", trusting)
    await _assert_refused(server, "transport")


# Run by Python at the start of the daphne process (sitecustomize, found on PYTHONPATH): each
# connection's autobahn protocol gets an option that daphne itself never sets.
_WITH_AUTOBAHN_OPTION = """
import daphne.server  # first: it installs Twisted's asyncio reactor
from daphne.ws_protocol import WebSocketProtocol

_made = WebSocketProtocol.connectionMade


def _made_with_option(protocol):
    _made(protocol)
    {option}


WebSocketProtocol.connectionMade = _made_with_option
"""


@pytest.mark.parametrize(
    "option",
    [
        "protocol.autoFragmentSize = 1024",  # the longer events in several frames
        "protocol.logOctets = True",
        "protocol.setTrackTimings(True)",  # trackedTimings
    ],
    ids=["autoFragmentSize", "logOctets", "trackTimings"],
)
async def test_autobahn_options_the_writer_does_not_reproduce_get_the_asgi_send(
    daphne_factory, tmp_path, option
):
    (tmp_path / "sitecustomize.py").write_text(_WITH_AUTOBAHN_OPTION.format(option=option))
    server = await asyncio.to_thread(
        daphne_factory, "direct-options", PYTHONPATH=_on_path(tmp_path)
    )
    await _every_edit_arrives_whole_and_in_order(server.ws_url)
    await _assert_refused(server, "options")


async def test_an_untested_version_turns_direct_writes_off_for_the_process(
    daphne_factory, tmp_path
):
    # What `pip install autobahn` without the pin would leave: another version's metadata,
    # found first on the path (the code stays the tested one; the check reads the metadata).
    metadata = tmp_path / "autobahn-99.0.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: autobahn\nVersion: 99.0.0\n")
    server = await asyncio.to_thread(
        daphne_factory, "direct-version", PYTHONPATH=_on_path(tmp_path)
    )
    await _every_edit_arrives_whole_and_in_order(server.ws_url)
    await _assert_refused(server, "version")
    tested = TESTED_VERSIONS["autobahn"]
    said = f"autobahn 99.0.0 is installed, direct writes were tested with {tested}"
    assert server.log().count(said) == 1  # once per process, not per connection


# Run by Python at the start of the daphne process (sitecustomize): one library module loads with
# an attribute renamed throughout, as a release that renamed it would be.
_WITH_RENAMED_ATTRIBUTE = """
import importlib.machinery
import re
import sys


class _Renamed(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        source = re.sub(rb"\\b{name}\\b", b"renamed{name}", self.get_data(self.path))
        return compile(source, self.path, "exec", dont_inherit=True)


class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "{module}":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        spec.loader = _Renamed(name, spec.origin)
        return spec


sys.meta_path.insert(0, _Finder)
"""


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("autobahn.websocket.protocol", "send_queue"),
        ("twisted.internet.abstract", "_tempDataBuffer"),
    ],
    ids=["autobahn", "Twisted"],
)
async def test_a_renamed_library_attribute_turns_direct_writes_off_for_the_connection(
    daphne_factory, tmp_path, module, name
):
    hook = _WITH_RENAMED_ATTRIBUTE.format(module=module, name=name)
    (tmp_path / "sitecustomize.py").write_text(hook)
    server = await asyncio.to_thread(
        daphne_factory, "direct-renamed", PYTHONPATH=_on_path(tmp_path)
    )
    await _every_edit_arrives_whole_and_in_order(server.ws_url)
    await _assert_refused(server, "attribute")
    log = server.log()
    assert log.count("direct writes are off: unexpected daphne connection") == 2
    assert f"has no attribute '{name}'" in log  # the traceback names it


def _refused_in_this_process(reason: str) -> float:
    return REGISTRY.get_sample_value(
        "tripsage_ws_direct_writes_disabled_total", {"reason": reason}
    )  # fmt: skip


async def test_another_asgi_server_gets_every_frame_through_its_send(
    transactional_db, database_thread
):
    """Channels' test server stands for any other: its send is not daphne's."""
    refused = _refused_in_this_process("server")
    written = list(instruments.direct_write_counts)
    alice, bob, _, trip = await sync_to_async(factories.make_crew)()
    app = JWTAuthMiddleware(URLRouter(websocket_urlpatterns))
    member = WebsocketCommunicator(app, f"/ws/trips/{trip.pk}/")
    assert (await member.connect())[0]
    await member.send_json_to({"token": await sync_to_async(factories.access_token)(bob)})
    for opening in ("connection.established", "rate_limit_status", "trip.snapshot"):
        assert (await member.receive_json_from())["type"] == opening
    values = VALUES[:5]
    for value in values:
        await _edit(alice, trip, value)
    received = []
    while len(received) < len(values):
        message = await member.receive_json_from(timeout=10)
        if message["type"] == "trip.updated":
            received.append(message)
    assert [m["value"] for m in received] == values
    await member.disconnect()
    assert _refused_in_this_process("server") == refused + 1
    assert instruments.direct_write_counts == written


async def _not_daphne(message: dict) -> None: ...


@pytest.mark.parametrize(
    "send",
    [_not_daphne, partial(_not_daphne), partial(print, object()), partial(print, end="")],
    ids=["coroutine", "partial-of-another", "partial-of-a-builtin", "partial-with-keywords"],
)
def test_a_send_that_is_not_daphnes_gets_no_writer(send):
    refused = _refused_in_this_process("server")
    assert writer_for(send) is None
    assert _refused_in_this_process("server") == refused + 1
