"""protocol.server: the server message schemas, the registry and the checked builders."""

from __future__ import annotations

import json
import typing

import pytest

import protocol
from collaboration.fields import EDITABLE_FIELDS
from protocol import ConnectionType, ErrorCode, InvalidServerMessage

USER = {"id": 1, "username": "alice"}
UPDATE_ID = "0b7e6b36-52c4-4f53-9d3c-2b6f4d1f8a11"


TRIP_UPDATED = {
    "seq": 3,
    "trip_id": 7,
    "update_id": UPDATE_ID,
    "field": "budget",
    "value": "3500",
    "version": 4,
    "by": USER,
    "source": "edit",
}


def trip_updated(**overrides: object) -> dict[str, object]:
    return protocol.server_message("trip.updated", **{**TRIP_UPDATED, **overrides})


def test_the_settings_check_what_the_builders_make(settings):
    assert settings.PROTOCOL_CHECK_SERVER_MESSAGES is True  # tripsage/settings/test.py


def test_a_misspelled_field_raises_naming_the_type_and_the_field():
    with pytest.raises(InvalidServerMessage, match=r"'trip.updated'.*vesion: Extra inputs"):
        fields = {**TRIP_UPDATED, "vesion": 4}
        del fields["version"]
        protocol.server_message("trip.updated", **fields)


def test_a_missing_field_and_a_wrong_type_are_named():
    message = trip_updated()
    del message["by"]
    with pytest.raises(InvalidServerMessage, match=r"'trip.updated' does not fit .*by: Field"):
        protocol.check_server_message(message)
    with pytest.raises(InvalidServerMessage, match=r"version: Input should be a valid integer"):
        trip_updated(version="4")  # no coercion: a number sent as a string is a bug


def test_a_nested_object_is_typed_too():
    with pytest.raises(InvalidServerMessage, match=r"by\.username: Field required"):
        trip_updated(by={"id": 1})
    with pytest.raises(InvalidServerMessage, match=r"field: Input should be 'name'"):
        trip_updated(field="price")


def test_an_unknown_type_is_refused():
    with pytest.raises(InvalidServerMessage, match=r"Unknown server message type 'trip\.upd'"):
        protocol.server_message("trip.upd", seq=1)


def test_the_error_envelope_is_checked():
    protocol.error_message(ErrorCode.SERVER_ERROR, "x", details={"retryable": True})
    with pytest.raises(InvalidServerMessage, match=r"'error' does not fit.*error\.code"):
        protocol.error_message("SERVER_FAULT", "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidServerMessage, match=r"error\.details\.when"):
        protocol.error_message(ErrorCode.SERVER_ERROR, "x", details={"when": object()})


def test_nothing_is_checked_when_the_setting_is_off(settings):
    settings.PROTOCOL_CHECK_SERVER_MESSAGES = False
    assert protocol.server_message("trip.upd", anything=object())["type"] == "trip.upd"
    assert protocol.error_message("NOPE", "x")["error"]["code"] == "NOPE"  # type: ignore[arg-type]


@pytest.mark.parametrize("check", [True, False])
def test_the_builders_output_is_the_same_checked_or_not(settings, check):
    settings.PROTOCOL_CHECK_SERVER_MESSAGES = check
    pong = protocol.server_message("pong", request_id="p-1")
    assert list(pong) == ["id", "type", "timestamp", "request_id"]
    assert "request_id" not in protocol.server_message("ping")  # no id asked, none echoed
    error = protocol.ProtocolError(ErrorCode.RATE_LIMIT_EXCEEDED, "slow", details={"limit": 1})
    envelope = error.envelope()
    assert list(envelope) == ["id", "type", "error", "timestamp", "request_id"]
    encoded = protocol.encode(envelope)
    assert encoded.startswith('{"id":"') and json.loads(encoded) == envelope


def test_an_ack_is_checked_against_the_connection_type_that_sends_it():
    ack = protocol.server_message("ack", request_id="a-1", ids=[3], unread_count=0)
    assert protocol.check_server_message(ack) is protocol.NotificationsReadAck
    assert protocol.check_server_message(ack, ConnectionType.NOTIFICATIONS)
    with pytest.raises(InvalidServerMessage, match="'ack' does not fit AgentCancelAck"):
        protocol.check_server_message(ack, ConnectionType.AGENT_STATUS)
    with pytest.raises(InvalidServerMessage, match=r"'typing\.update' on a trip_collaboration"):
        protocol.check_server_message(
            {**ack, "type": "typing.update"}, ConnectionType.TRIP_COLLABORATION
        )


def test_each_connection_type_sends_each_type_once():
    for kind in ConnectionType:
        models = protocol.COMMON_SERVER_MESSAGES + protocol.SERVER_MESSAGES[kind]
        names = [model.type_name for model in models]
        assert len(names) == len(set(names)), kind


def test_the_registry_has_a_schema_for_every_type():
    assert set(protocol.SERVER_MESSAGE_TYPES) == {
        "connection.established", "rate_limit_status", "ping", "pong", "auth.refreshed", "error",
        "trip.snapshot", "ack", "trip.updated", "conflict.detected", "conflict.resolved",
        "member.updated", "member.removed", "presence.update", "editing.update",
        "resume.complete", "resync.required", "echo", "chat.history", "chat.message",
        "typing.update", "notifications.unread", "notification.created", "notification.read",
        "agent.runs", "agent.run",
    }  # fmt: skip
    assert len(protocol.SERVER_MESSAGE_TYPES["ack"]) == 4  # one per connection type


def test_trip_fields_are_the_editable_fields():
    assert typing.get_args(protocol.TripField) == EDITABLE_FIELDS
    assert tuple(protocol.TripFields.model_fields) == EDITABLE_FIELDS
    assert tuple(protocol.FieldVersions.model_fields) == EDITABLE_FIELDS
