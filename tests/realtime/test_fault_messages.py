"""What a client is told when the server fails: a fixed SERVER_ERROR message, never the
exception's text (docs/security.md, CS-24 and ASVS 16.5.1); the text goes to the log only."""

from __future__ import annotations

import json
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import path

import protocol
from protocol import CloseCode, ConnectionType
from realtime.auth import JWTAuthMiddleware
from realtime.consumers.base import RealtimeConsumer
from tests import factories
from tripsage.routing import URLRouter

pytestmark = pytest.mark.django_db(transaction=True)

# What an exception of ours might carry: internals a client must never read.
SECRET = "password=hunter2 in /srv/tripsage/realtime/secret_module.py line 42"


class _Failing(RealtimeConsumer):
    connection_type = ConnectionType.TRIP_COLLABORATION
    client_messages = (protocol.Echo,)

    async def on_echo(self, message: protocol.Echo) -> None:
        raise RuntimeError(SECRET)


class _FailingToOpen(RealtimeConsumer):
    connection_type = ConnectionType.TRIP_COLLABORATION

    async def on_connected(self) -> None:
        raise RuntimeError(SECRET)


async def _opened(consumer: type[RealtimeConsumer], username: str) -> WebsocketCommunicator:
    user = await sync_to_async(factories.make_user)(username)
    token = await sync_to_async(factories.access_token)(user)
    app = JWTAuthMiddleware(URLRouter([path("ws/failing/", consumer.as_asgi())]))
    communicator = WebsocketCommunicator(app, "/ws/failing/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"token": token, "id": "a"})
    assert (await communicator.receive_json_from())["type"] == "connection.established"
    assert (await communicator.receive_json_from())["type"] == "rate_limit_status"
    return communicator


async def test_a_fault_of_ours_tells_the_client_nothing_of_it(caplog):
    with caplog.at_level(logging.ERROR):
        handling = await _opened(_Failing, "alice")
        await handling.send_json_to({"type": "echo", "id": "boom", "data": 1})
        while_handling = await handling.receive_from()
        await handling.disconnect()

        opening = await _opened(_FailingToOpen, "bob")
        while_opening = await opening.receive_from()
        assert (await opening.receive_output())["code"] == CloseCode.SERVER_FAULT

    for raw, request_id in ((while_handling, "boom"), (while_opening, "a")):
        assert "hunter2" not in raw and "secret_module" not in raw and "Traceback" not in raw
        error = json.loads(raw)
        assert error["request_id"] == request_id
        assert error["error"]["code"] == "SERVER_ERROR"
        assert error["error"]["message"].startswith("The server ")  # fixed, ours
        assert error["error"]["details"] == {"retryable": True}
    # The operator's log has what the client was not told.
    logged = [record for record in caplog.records if record.exc_info is not None]
    assert [str(record.exc_info[1]) for record in logged] == [SECRET, SECRET]
