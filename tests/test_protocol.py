"""The protocol module: envelopes and validation, without a socket."""

from __future__ import annotations

import pytest

import protocol
from protocol import ErrorCode, ProtocolError

REGISTRY = protocol.message_registry((*protocol.COMMON_CLIENT_MESSAGES, protocol.Echo))


def test_error_envelope_has_exactly_the_seed_fields():
    envelope = protocol.error_message(ErrorCode.SERVER_ERROR, "x", details={"retryable": True})
    assert set(envelope) == {"id", "type", "error", "timestamp", "request_id"}
    assert envelope["timestamp"].endswith("Z")


def test_every_seed_error_code_is_declared():
    assert {code.value for code in ErrorCode} == {
        "CONNECTION_FAILED", "AUTHENTICATION_FAILED", "AUTHORIZATION_FAILED",
        "RATE_LIMIT_EXCEEDED", "MESSAGE_TOO_LARGE", "INVALID_MESSAGE_FORMAT", "SERVER_ERROR",
        "NETWORK_ERROR",
    }  # fmt: skip


def test_size_is_counted_in_utf8_bytes():
    text = '{"type":"echo","data":"' + "é" * 40 + '"}'  # 40 characters, 80 bytes
    with pytest.raises(ProtocolError) as error:
        protocol.parse_json(text, None, max_bytes=100)
    assert error.value.code is ErrorCode.MESSAGE_TOO_LARGE


def test_validation_error_keeps_the_request_id_and_names_nested_fields():
    with pytest.raises(ProtocolError) as error:
        protocol.validate({"type": "auth.refresh", "id": "r", "token": 5}, REGISTRY)
    assert error.value.request_id == "r"
    assert error.value.details["field"] == "token"


def test_registry_knows_each_type_once():
    assert set(REGISTRY) == {"auth.refresh", "ping", "pong", "rate_limit_status", "echo"}
