"""The checked-in JSON Schema is the model's, and never refuses what the model accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from clickstream_schema.jsonschema import event_json_schema, render
from support.hostile import BASE, extreme_events

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "shared" / "event.schema.json"
VALIDATOR = Draft202012Validator(
    event_json_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER
)


def test_the_checked_in_schema_is_generated_from_the_model() -> None:
    # Regenerate with: python -m clickstream_schema.jsonschema shared/event.schema.json
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render()


def test_the_schema_states_the_limits_json_schema_can_express() -> None:
    properties = event_json_schema()["properties"]
    assert "pattern" in properties["timestamp"]
    assert "2100-01-01" in properties["timestamp"]["description"]
    assert "pattern" in properties["event_id"]
    assert properties["user_agent"]["pattern"] == "^[^\\x00]*$"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extreme_events())
def test_every_event_the_model_accepts_is_valid_for_the_schema(event: dict[str, Any]) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(json.loads(json.dumps(event)))]
    assert errors == []


def test_the_schema_refuses_what_the_model_refuses_where_it_can() -> None:
    for changes in (
        {"timestamp": "2026-11-01 09:00:00Z"},
        {"timestamp": 1_700_000_000},
        {"event_id": "6F1C1B7E-1F53-4D4B-8A8E-2B1F2D3C4E5F"},
        {"user_agent": "nul\x00"},
        {"schema_version": True},
        {"geo": {**BASE["geo"], "location": {"lat": "1", "lon": 0}}},
        {"geo": {**BASE["geo"], "country": "fi"}},
    ):
        assert not VALIDATOR.is_valid({**BASE, **changes}), changes
    assert VALIDATOR.is_valid(BASE)
