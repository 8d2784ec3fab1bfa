"""The frame codec: ``decode_frame`` (every refusal, with its exact message, uid and close) and ``encode_json``."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest

from likha_realtime.wire.codec import UNPARSABLE, FrameError, FrameTooLarge, decode_frame, encode_json
from likha_realtime.wire.errors import InvalidPayload
from realtime_auth.wire import CloseCode, ErrorCode

KNOWN = frozenset({"ping", "subscribe"})
LIMIT = 64
BAD_UID = 'Invalid message: "uid" must be a string (up to 256 characters) or a finite number.'


def decode(text: str | None, data: bytes | None = None, max_bytes: int = LIMIT) -> dict[str, Any]:
    return decode_frame(text, data, max_bytes, KNOWN)


def refusal(text: str | None, data: bytes | None = None, max_bytes: int = LIMIT) -> FrameError | FrameTooLarge:
    with pytest.raises((FrameError, FrameTooLarge)) as caught:
        decode(text, data, max_bytes)
    return caught.value


# -- decode_frame: what it accepts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"ping"}', {"type": "ping"}),
        ('{"type":"ping","uid":"a"}', {"type": "ping", "uid": "a"}),
        ('{"type":"ping","uid":7}', {"type": "ping", "uid": 7}),
        ('{"type":"ping","uid":1.5}', {"type": "ping", "uid": 1.5}),
        ('{"type":"ping","uid":null}', {"type": "ping", "uid": None}),
        (
            '{"uid":"x","type":"subscribe","query":{"limit":1.0}}',
            {"uid": "x", "type": "subscribe", "query": {"limit": 1.0}},
        ),
    ],
)
def test_a_json_object_with_a_known_type_and_a_valid_uid_is_the_message(text: str, expected: dict[str, Any]) -> None:
    message = decode(text)
    assert message == expected
    assert list(message) == list(expected)  # key order as sent


def test_a_uid_of_exactly_256_characters_is_valid() -> None:
    uid = "u" * 256
    assert decode(f'{{"type":"ping","uid":"{uid}"}}', max_bytes=1024)["uid"] == uid


def test_a_frame_of_exactly_the_limit_is_decoded() -> None:
    text = '{"type":"ping","pad":"' + "x" * (LIMIT - 24) + '"}'
    assert len(text.encode()) == LIMIT
    assert decode(text)["type"] == "ping"


# -- decode_frame: what it refuses ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["not json", "{nope", '{"type":"ping"', "", '{"type":"ping"} trailing'])
def test_text_that_is_not_json_cannot_be_parsed(text: str) -> None:
    error = refusal(text)
    assert (type(error), error.message, error.uid) == (FrameError, UNPARSABLE, None)
    assert UNPARSABLE == "Unable to parse the incoming message."


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1,2]", "an array"), ('"text"', "a string"), ("true", "a boolean"), ("null", "null"), ("3", "a number")],
)
def test_json_that_is_not_an_object_is_named_by_its_kind(text: str, kind: str) -> None:
    error = refusal(text)
    assert error.message == f"Invalid message: expected a JSON object, received {kind}."
    assert error.uid is None


@pytest.mark.parametrize(
    "uid", ['{"a":1}', "[1]", "true", "false", '"' + "u" * 257 + '"'], ids=["object", "array", "true", "false", "long"]
)
def test_a_bad_uid_is_refused_and_not_echoed(uid: str) -> None:
    error = refusal(f'{{"type":"ping","uid":{uid}}}', max_bytes=1024)
    assert (error.message, error.uid) == (BAD_UID, None)


@pytest.mark.parametrize(
    ("text", "message", "uid"),
    [
        ('{"uid":"u1"}', 'Invalid message: "type" is required.', "u1"),
        ('{"type":null,"uid":3}', 'Invalid message: "type" is required.', 3),
        ('{"type":5,"uid":2}', 'Invalid message: "type" must be a string.', 2),
        ('{"type":["ping"]}', 'Invalid message: "type" must be a string.', None),
        ('{"type":"launch","uid":"u3"}', 'Invalid message: unknown type "launch".', "u3"),
        ('{"type":"auth"}', 'Invalid message: unknown type "auth".', None),  # only the types the socket names
    ],
)
def test_a_missing_bad_or_unknown_type_is_refused_with_the_uid_to_echo(text: str, message: str, uid: Any) -> None:
    error = refusal(text)
    assert (type(error), error.message, error.uid) == (FrameError, message, uid)


def test_an_unknown_type_is_quoted_up_to_64_characters() -> None:
    error = refusal('{"type":"' + "t" * 100 + '"}', max_bytes=1024)
    assert error.message == f'Invalid message: unknown type "{"t" * 64}".'


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"ping","uid":NaN}',
        '{"type":"ping","uid":Infinity}',
        '{"type":"ping","uid":-Infinity}',
        '{"type":"ping","uid":1e999}',
        '{"type":"ping","n":[NaN]}',
    ],
)
def test_nan_and_infinite_numbers_are_not_json(text: str) -> None:
    error = refusal(text)
    assert (type(error), error.message, error.uid) == (FrameError, UNPARSABLE, None)


def test_deeply_nested_json_cannot_be_parsed_rather_than_crash() -> None:
    error = refusal("[" * 100_000 + "]" * 100_000, max_bytes=1_000_000)
    assert error.message == UNPARSABLE


def test_text_over_the_limit_is_too_large_and_closes_4413() -> None:
    error = refusal('{"type":"ping","pad":"' + "x" * LIMIT + '"}')
    assert type(error) is FrameTooLarge
    assert error.message == f"Message too large: over {LIMIT} bytes."
    assert (error.code, error.close_code) == (ErrorCode.INVALID_PAYLOAD, CloseCode.MESSAGE_TOO_LARGE)


def test_the_limit_counts_utf8_bytes_not_characters() -> None:
    text = '{"type":"ping","pad":"' + "é" * 30 + '"}'  # 53 characters, 83 bytes
    assert len(text) <= LIMIT < len(text.encode())
    assert refusal(text).message == f"Message too large: over {LIMIT} bytes."


def test_binary_frames_are_refused_and_over_the_limit_they_are_too_large() -> None:
    small = refusal(None, b'{"type":"ping"}')
    assert (type(small), small.message) == (FrameError, "Binary frames are not supported; send JSON text frames.")
    assert small.close_code is None
    assert type(refusal(None, b"x" * (LIMIT + 1))) is FrameTooLarge
    assert refusal(None, None).message == "Binary frames are not supported; send JSON text frames."


def test_frame_errors_are_invalid_payload_and_keep_the_socket_open() -> None:
    error = refusal("[]")
    assert isinstance(error, InvalidPayload)
    assert (error.code, error.close_code) == (ErrorCode.INVALID_PAYLOAD, None)


# -- encode_json ------------------------------------------------------------------------------------------------


def test_encode_json_is_compact_and_keeps_the_key_order() -> None:
    assert encode_json({"type": "subscription", "event": "init", "data": [1, None, True], "uid": "1"}) == (
        '{"type":"subscription","event":"init","data":[1,null,true],"uid":"1"}'
    )


def test_decimals_travel_as_their_exact_text() -> None:
    assert encode_json({"price": Decimal("1.50"), "big": Decimal("12345678901234567890.01")}) == (
        '{"price":"1.50","big":"12345678901234567890.01"}'
    )


def test_dates_and_times_travel_as_iso_text_with_milliseconds() -> None:
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    values = {"at": moment, "day": moment.date(), "time": dt.time(3, 4, 5), "naive": dt.datetime(2024, 1, 2, 3, 4, 5)}
    assert encode_json(values) == (
        '{"at":"2024-01-02T03:04:05.123Z","day":"2024-01-02","time":"03:04:05","naive":"2024-01-02T03:04:05"}'
    )


def test_uuids_travel_as_text_and_non_ascii_is_escaped() -> None:
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert (
        encode_json({"id": key, "name": "Café"}) == '{"id":"12345678-1234-5678-1234-567812345678","name":"Caf\\u00e9"}'
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_json_refuses_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        encode_json({"n": value})


def test_what_encode_json_writes_decode_frame_reads_back() -> None:
    frame = {"type": "subscribe", "uid": 2.5, "query": {"filter": {"price": {"_gt": Decimal("1.5")}}}}
    assert decode(encode_json(frame), max_bytes=1024) == {
        "type": "subscribe",
        "uid": 2.5,
        "query": {"filter": {"price": {"_gt": "1.5"}}},
    }
