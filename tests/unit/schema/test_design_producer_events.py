"""The design's reference producer's messages are events: ids derived from the bytes.

Messages as ``support.design_producer`` writes them (no event_id, device_type or
viewport_size; float prices; ``+00:00`` timestamps; keyed by user_id).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator

from clickstream_schema import (
    DERIVED_ID_NAMESPACE,
    UNSENT_EVENT_ID,
    ClickEvent,
    InvalidEvent,
    decode,
    derived_event_id,
    parse,
)
from clickstream_schema.jsonschema import event_json_schema
from support.design_producer import design_messages

MESSAGES = design_messages(500, seed=9)


def test_every_message_of_the_design_producer_decodes() -> None:
    kinds = set()
    for key, value in MESSAGES:
        event = decode(value)
        raw = json.loads(value)
        assert "event_id" not in raw
        assert key == raw["user_id"].encode()
        assert event.device_type is None
        assert event.viewport_size is None
        assert event.timestamp.isoformat() == raw["timestamp"]
        if "price" in raw:
            assert isinstance(raw["price"], float)
            assert event.price == Decimal(f"{raw['price']:.2f}")
        kinds.add(event.event_type.value)
    # Every event type, with its type-specific fields, was exercised.
    assert len(kinds) == 9


def test_the_derived_id_is_uuid5_of_the_message_text_in_the_documented_namespace() -> None:
    for _key, value in MESSAGES[:50]:
        expected = uuid.uuid5(DERIVED_ID_NAMESPACE, value.decode("utf-8"))
        assert decode(value).event_id == expected == derived_event_id(value)
        assert expected.version == 5
    # README states the namespace as uuid5(NAMESPACE_URL, the schema's $id).
    schema_id = ClickEvent.model_config["json_schema_extra"]["$id"]  # type: ignore[index,call-overload]
    assert uuid.uuid5(uuid.NAMESPACE_URL, schema_id) == DERIVED_ID_NAMESPACE


def test_a_byte_identical_resend_is_the_same_event_and_any_other_byte_is_not() -> None:
    _key, value = MESSAGES[0]
    assert decode(value).event_id == decode(bytes(value)).event_id
    raw = json.loads(value)
    compact = json.dumps(raw, separators=(",", ":")).encode()
    assert decode(compact).event_id != decode(value).event_id  # same dict, other bytes
    assert decode(compact).model_dump(exclude={"event_id"}) == decode(value).model_dump(
        exclude={"event_id"}
    )


def test_parse_leaves_the_id_unset_and_a_sent_id_is_kept_even_the_nil_uuid() -> None:
    _key, value = MESSAGES[1]
    assert parse(value).event_id is UNSENT_EVENT_ID
    raw = json.loads(value)
    nil = dict(raw, event_id="00000000-0000-0000-0000-000000000000")
    event = decode(json.dumps(nil).encode())
    assert event.event_id == uuid.UUID(int=0)  # sent, so not derived
    assert parse(json.dumps(nil).encode()).event_id is not UNSENT_EVENT_ID


def test_everything_else_stays_as_strict() -> None:
    raw = json.loads(MESSAGES[2][1])
    for change, field in [
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"event_id": str(uuid.uuid4()).upper()}, "event_id"),
        ({"device_type": "phone"}, "device_type"),
        ({"viewport_size": "big"}, "viewport_size"),
        ({"timestamp": "2026-11-02 08:00:00+00:00"}, "timestamp"),
        ({"ip_address": "010.1.1.1"}, "ip_address"),
        ({"unknown_field": 1}, "unknown_field"),
    ]:
        with pytest.raises(InvalidEvent) as error:
            decode(json.dumps({**raw, **change}).encode())
        assert error.value.reason == "schema"
        assert field in error.value.detail
    for missing in ("user_id", "session_id", "timestamp", "ip_address", "user_agent"):
        with pytest.raises(InvalidEvent, match=missing):
            decode(json.dumps({k: v for k, v in raw.items() if k != missing}).encode())


def test_python_callers_must_still_give_an_event_id() -> None:
    raw = json.loads(MESSAGES[3][1])
    with pytest.raises(ValueError, match="event_id is required"):
        ClickEvent.model_validate(raw)
    assert ClickEvent.model_validate({**raw, "event_id": uuid.uuid4()}).device_type is None


def test_the_json_schema_accepts_them_and_no_longer_requires_the_three_fields() -> None:
    schema = event_json_schema()
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for _key, value in MESSAGES[:100]:
        assert [e.message for e in validator.iter_errors(json.loads(value))] == []
    assert not {"event_id", "device_type", "viewport_size"} & set(schema["required"])
    assert "default" not in schema["properties"]["event_id"]


def test_a_schema_error_lists_five_and_says_how_many_more() -> None:
    raw = {"event_type": "nope", "timestamp": 1, "page_url": "", "user_agent": ""}
    with pytest.raises(InvalidEvent) as error:
        decode(json.dumps(raw).encode())
    detail = error.value.detail
    total = int(detail.split(" error(s)")[0])
    assert total > 5
    assert detail.endswith(f"; and {total - 5} more")
    assert detail.count(": ") == 1 + 5  # "N error(s): " then five "field: message"
