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


def _refusal(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as error:
        protocol.validate(protocol.parse_json(text, None, max_bytes=65536), REGISTRY)
    return error.value


@pytest.mark.parametrize(
    ("text", "details", "request_id"),
    [
        ("[" * 30000, {"reason": "too_deep", "max_depth": 32}, None),
        (
            '{"id":"d","data":' + "[" * 32 + "]" * 32 + "}",
            {"reason": "too_deep", "max_depth": 32},
            "d",
        ),
        ('{"data":"' + "[" * 500 + '","type":"echo","x":1}', {"reason": "invalid_fields"}, None),
        ("1" + "0" * 4300, {"reason": "number_out_of_range"}, None),
        ('{"data":1e309}', {"reason": "number_out_of_range"}, None),
        ('{"data":NaN}', {"reason": "invalid_json", "position": None}, None),
        ('{"data":-Infinity}', {"reason": "invalid_json", "position": None}, None),
        ('{"type":"ping","id":"\\ud800"}', {"reason": "invalid_text", "field": "id"}, None),
        (
            '{"type":"echo","id":"e","data":["\\udc00"]}',
            {"reason": "invalid_text", "field": "data"},
            "e",
        ),
        ('{"type":"echo","\\ud800x":1}', {"reason": "invalid_text", "field": "\ufffdx"}, None),
        ('{"type":"\\ud800"}', {"reason": "invalid_text", "field": "type"}, None),
    ],
    ids=[
        "30000-deep",
        "33-deep",
        "brackets-in-a-string",
        "4301-digits",
        "beyond-a-double",
        "NaN",
        "Infinity",
        "surrogate-id",
        "surrogate-in-data",
        "surrogate-key",
        "surrogate-type",
    ],
)
def test_what_cannot_be_carried_back_is_refused_precisely(text, details, request_id):
    error = _refusal(text)
    assert error.code is ErrorCode.INVALID_MESSAGE_FORMAT
    assert {key: error.details.get(key) for key in details} == details
    assert error.request_id == request_id
    protocol.encode(error.envelope()).encode("utf-8")  # and the refusal itself is text


def test_32_levels_and_a_valid_surrogate_pair_are_fine():
    text = '{"type":"echo","id":"\\ud83d\\ude00","data":' + "[" * 31 + "]" * 31 + "}"
    message = protocol.validate(protocol.parse_json(text, None, max_bytes=65536), REGISTRY)
    assert message.id == "\U0001f600"


def test_request_id_is_only_ever_text():
    assert protocol.request_id_of({"id": "a\ud800"}) is None
    assert protocol.request_id_of({"id": "\U0001f600"}) == "\U0001f600"


def test_encode_never_yields_what_utf8_cannot_carry():
    text = protocol.encode({"type": "x", "a\udfff": ["b\ud800c", "é"]})
    assert text == '{"type":"x","a\ufffd":["b\ufffdc","é"]}'
    text.encode("utf-8")
