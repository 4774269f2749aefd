"""Named regressions: each value that once passed the contract and failed a store,
or escaped ``decode`` as an exception other than InvalidEvent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, get_args
from uuid import UUID

import pytest
from pydantic import ValidationError

from clickstream_schema import ClickEvent, GeoPoint, InvalidEvent, decode
from clickstream_schema.codec import Reason
from support.hostile import BASE, nested, nested_in_event, wire


def _with(**changes: Any) -> bytes:
    return wire({**BASE, **changes})


def _reason(value: bytes | None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode(value)
    return caught.value.reason


def _python(**changes: Any) -> ClickEvent:
    return ClickEvent.model_validate({**BASE, **changes})


# --- decode is total ------------------------------------------------------------


def test_ten_kilobytes_of_nested_arrays_are_not_json() -> None:
    # Once: pydantic refused it, then the classifier's json.loads raised RecursionError.
    value = nested(5_000)
    assert len(value) == 10_000
    assert _reason(value) == "not_json"


def test_deeply_nested_objects_are_not_json() -> None:
    assert _reason(nested(3_000, arrays=False)) == "not_json"


def test_a_nested_array_inside_an_event_field_is_not_json() -> None:
    assert _reason(nested_in_event(5_000)) == "not_json"


def test_a_megabyte_of_nested_arrays_is_refused_without_recursion() -> None:
    assert _reason(nested(524_288)) == "not_json"


def test_nesting_the_parser_accepts_is_a_schema_error_inside_an_event() -> None:
    assert _reason(nested_in_event(100)) == "schema"
    assert _reason(nested(100)) == "not_object"


def test_an_integer_of_thousands_of_digits_is_not_json() -> None:
    # Once: json.loads raised ValueError (int max-str-digits) inside the classifier.
    assert _reason(_with(price=None)[:-1] + b',"x":1' + b"0" * 5_000 + b"}") == "not_json"
    assert _reason(b'{"price":1' + b"0" * 5_000 + b"}") == "not_json"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"x" * 1_048_577, "oversize"),
        (b"\xc3\x28 not utf-8", "not_utf8"),
        (b'{"event_id": "truncated', "not_json"),
        (b"\xef\xbb\xbf{}", "not_json"),  # a byte-order mark
        (b"[1, 2, 3]", "not_object"),
        (b'"just a string"', "not_object"),
        (b"{}", "schema"),
    ],
)
def test_each_reason(value: bytes | None, reason: str) -> None:
    assert _reason(value) == reason


@pytest.mark.parametrize("reason", ["unstorable", "crashed_decoder"])
def test_the_aggregators_own_reasons_are_in_the_contract(reason: str) -> None:
    # Reasons the aggregator gives (decode never does): dead letters use the one vocabulary.
    assert reason in get_args(Reason)


# --- strings --------------------------------------------------------------------


@pytest.mark.parametrize("field", ["user_agent", "page_url", "session_id", "search_query"])
def test_a_lone_surrogate_escape_is_refused(field: str) -> None:
    value = _with(**{field: "x"}).replace(b'"x"', b'"a\\ud800b"')
    assert _reason(value) == "not_json"


def test_a_lone_surrogate_from_python_is_refused() -> None:
    with pytest.raises(ValidationError):
        _python(user_agent="a\udc80b")


def test_a_surrogate_pair_escape_is_one_astral_character() -> None:
    value = _with(user_agent="x").replace(b'"x"', b'"\\ud83d\\ude00"')
    assert decode(value).user_agent == "😀"


def test_nul_is_refused_from_json_and_from_python() -> None:
    assert _reason(_with(user_agent="nul\x00byte")) == "schema"
    assert _reason(wire({**BASE, "geo": {**BASE["geo"], "city": "\x00"}})) == "schema"
    with pytest.raises(ValidationError):
        _python(page_url="a\x00b")


def test_a_backslash_u0000_text_is_not_a_nul() -> None:
    # The old byte-level NUL check refused this valid string too.
    assert decode(_with(user_agent="literally \\u0000")).user_agent == "literally \\u0000"


# --- timestamps -----------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC: Python cannot convert it
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC
        "1969-12-31T23:59:59.999999Z",
        "1970-01-01T04:59:59+05:00",
        "2100-01-01T00:00:00Z",
        "2099-12-31T23:00:00-01:00",
    ],
)
def test_timestamps_outside_the_range_are_refused(timestamp: str) -> None:
    assert _reason(_with(timestamp=timestamp)) == "schema"
    with pytest.raises(ValidationError):
        _python(timestamp=timestamp)


@pytest.mark.parametrize(
    "timestamp",
    [
        "1970-01-01T00:00:00Z",
        "1970-01-01T05:00:00+05:00",
        "1969-12-31T19:00:00-05:00",
        "2099-12-31T23:59:59.999999Z",
        "2100-01-01T13:59:59+14:00",
        "2026-11-01T09:00:00+18:00",
        "2026-11-01T09:00:00-18:00",
        "2026-11-01T09:00:00+05:45",
        "2026-11-01T09:00:00-09:30",
        "2026-11-01T09:00:00.123456789Z",
    ],
)
def test_timestamps_at_the_edges_are_accepted(timestamp: str) -> None:
    event = decode(_with(timestamp=timestamp))
    assert event == _python(timestamp=timestamp)
    assert event.timestamp.astimezone(UTC).year in (1970, 2026, 2099)


@pytest.mark.parametrize(
    "timestamp",
    [
        1_700_000_000,  # pydantic: seconds; OpenSearch: milliseconds
        1_700_000_000_000,
        "2026-11-01 09:00:00Z",  # OpenSearch's strict_date_optional_time needs the T
        "2026-11-01t09:00:00z",
        "2026-11-01T09:00:00",  # no offset
        "2026-11-01",
        "2026-11-01T09:00:00+18:01",  # beyond java.time's ±18:00
        "2026-11-01T09:00:00+05:30:15",
        "2026-11-01T09:00:00+0530",
    ],
)
def test_timestamps_in_forms_opensearch_reads_differently_are_refused(timestamp: object) -> None:
    assert _reason(_with(timestamp=timestamp)) == "schema"


def test_python_datetimes_follow_the_same_rules() -> None:
    ok = datetime(2026, 11, 1, 9, tzinfo=timezone(timedelta(hours=-18)))
    assert _python(timestamp=ok).timestamp == ok
    for bad in (
        datetime(2026, 11, 1, 9, tzinfo=timezone(timedelta(hours=20))),
        datetime(2026, 11, 1, 9, tzinfo=timezone(timedelta(hours=1, seconds=30))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(2026, 11, 1, 9),  # naive
    ):
        with pytest.raises(ValidationError):
            _python(timestamp=bad)


# --- numbers --------------------------------------------------------------------


def _geo(lat: object, lon: object = 0) -> dict[str, Any]:
    return {**BASE["geo"], "location": {"lat": lat, "lon": lon}}


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_refused(literal: bytes) -> None:
    for template in (
        _with(geo=_geo(1.5)).replace(b'"lat": 1.5', b'"lat": ' + literal),
        _with(geo=_geo(0, 1.5)).replace(b'"lon": 1.5', b'"lon": ' + literal),
        _with(event_type="purchase", price=1.5).replace(b'"price": 1.5', b'"price": ' + literal),
    ):
        assert literal in template
        assert _reason(template) == "schema"


@pytest.mark.parametrize("bad", ["12.5", True, "1_000", "١٢"])
def test_numbers_must_be_json_numbers_on_the_wire(bad: object) -> None:
    assert _reason(_with(geo=_geo(bad))) == "schema"
    assert _reason(_with(geo=_geo(0, bad))) == "schema"
    assert _reason(_with(event_type="purchase", price=bad)) == "schema"


def test_python_callers_may_still_pass_numbers_as_text() -> None:
    # faker's coordinates are strings; the model re-encodes them as numbers.
    assert GeoPoint.model_validate({"lat": "60.17", "lon": "24.94"}) == GeoPoint(
        lat=60.17, lon=24.94
    )
    assert _python(event_type="purchase", price="19.99").price == Decimal("19.99")
    with pytest.raises(ValidationError):
        GeoPoint.model_validate({"lat": float("nan"), "lon": 0})


def test_coordinates_at_the_poles_and_the_date_line_are_accepted() -> None:
    for lat, lon in ((90, 180), (-90, -180), (-0.0, 5e-324)):
        assert decode(_with(geo=_geo(lat, lon))).geo is not None
    assert _reason(_with(geo=_geo(90.000001))) == "schema"
    assert _reason(_with(geo=_geo(0, -180.000001))) == "schema"


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
def test_schema_version_is_the_integer_one_on_the_wire(version: object) -> None:
    assert _reason(_with(schema_version=version)) == "schema"


# --- identifiers and addresses --------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "6F1C1B7E-1F53-4D4B-8A8E-2B1F2D3C4E5F",
        "{6f1c1b7e-1f53-4d4b-8a8e-2b1f2d3c4e5f}",
        "6f1c1b7e1f534d4b8a8e2b1f2d3c4e5f",
        "urn:uuid:6f1c1b7e-1f53-4d4b-8a8e-2b1f2d3c4e5f",
    ],
)
def test_event_ids_are_canonical_on_the_wire(spelling: str) -> None:
    # The sink makes the raw id the OpenSearch document id.
    assert _reason(_with(event_id=spelling)) == "schema"
    assert _python(event_id=UUID(spelling)).event_id == UUID(BASE["event_id"])


@pytest.mark.parametrize(
    "address", ["01.2.3.4", "1.2.3.4/24", "fe80::1%eth0", "1.2.3", "::ffff:1.2.3.04", " 1.2.3.4"]
)
def test_addresses_inet_or_opensearch_would_refuse_are_refused(address: str) -> None:
    assert _reason(_with(ip_address=address)) == "schema"


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "::", "::ffff:1.2.3.4", "0000:0000:0000:0000:0000:ffff:255.255.255.255", "FE80::1"],
)
def test_addresses_in_every_accepted_form(address: str) -> None:
    assert decode(_with(ip_address=address)).ip_address == address


def test_country_is_an_upper_case_alpha_2_code() -> None:
    for country in ("fi", "F1", "FIN", "😀"):
        assert _reason(wire({**BASE, "geo": {**BASE["geo"], "country": country}})) == "schema"


def test_strings_at_their_length_limits() -> None:
    astral = "😀" * 2048  # 8 KiB of UTF-8 in 2048 code points
    assert decode(_with(user_agent=astral)).user_agent == astral
    assert _reason(_with(user_agent=astral + "😀")) == "schema"
    assert decode(_with(session_id="e\u0301" * 127 + "e")).session_id.startswith("e\u0301")
    assert _reason(_with(session_id="e\u0301" * 128)) == "schema"  # 256 code points


def test_the_wire_form_survives_a_json_round_trip() -> None:
    value = _with(event_type="purchase", price=999999.99)
    event = decode(value)
    assert event.price == Decimal("999999.99")
    assert json.loads(value)["price"] == 999999.99
