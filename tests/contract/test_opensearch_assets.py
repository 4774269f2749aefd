"""The checked-in OpenSearch assets agree with the event contract and with each other.

The expected mapping is derived from ``ClickEvent.model_fields`` (recursing into
Geo/GeoPoint), so adding, removing or retyping an event field without updating
``opensearch/index-template.json`` fails here. Saved objects are checked the way
Dashboards would use them: every field they aggregate on must exist with an
aggregatable type, and every reference must resolve inside the file.
"""

from __future__ import annotations

import json
import re
import types
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

import pytest
from pydantic import AwareDatetime, BaseModel, IPvAnyAddress

from clickstream_ops.setup.assets import (
    PIPELINE_ID,
    SAVED_OBJECTS_FILE,
    load_assets,
    with_retention,
)
from clickstream_schema import INDEX_PATTERN, ClickEvent, GeoPoint, encode
from clickstream_schema.event import EventType

ASSETS_DIR = Path(__file__).resolve().parents[2] / "opensearch"

#: Design decisions the Python types cannot express: free text is analysed.
TEXT_FIELDS = {"user_agent", "search_query"}
#: Keyword sub-fields of the text fields, for terms aggregations and exact filters.
MULTI_FIELDS = {"user_agent.keyword": "keyword", "search_query.keyword": "keyword"}
#: Fields the ingest pipeline adds (not part of the event).
DERIVED_FIELDS = {
    "ingested_at": "date",
    "ingest_delay_ms": "long",
    "user_agent_details.name": "keyword",
    "user_agent_details.version": "keyword",
    "user_agent_details.os.name": "keyword",
    "user_agent_details.os.version": "keyword",
    "user_agent_details.os.full": "keyword",
    "user_agent_details.device.name": "keyword",
}
AGGREGATABLE = {"keyword", "date", "ip", "scaled_float", "long", "short", "geo_point"}


# --- the mapping against the schema ------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the one underlying type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        else:
            return annotation


def _opensearch_type(name: str, annotation: Any) -> str:
    base = _unwrap(annotation)
    if get_origin(base) is Literal:
        values = get_args(base)
        assert all(isinstance(v, int) for v in values), f"{name}: unexpected literal {values}"
        return "short"
    if base is str:
        return "text" if name in TEXT_FIELDS else "keyword"
    if isinstance(base, type):
        for python_type, mapped in (
            (UUID, "keyword"),
            (Enum, "keyword"),
            (AwareDatetime, "date"),
            (datetime, "date"),
            (IPvAnyAddress, "ip"),
            # Money: exact cents (scaled_float stores a long); float loses them above 2**17.
            (Decimal, "scaled_float"),
        ):
            if issubclass(base, python_type):
                return mapped
    raise AssertionError(f"{name}: no intended OpenSearch type for {annotation!r}; decide one")


_IP_FORMATS = {"ipv4", "ipv6", "ipvanyaddress"}


def _is_ip(model: type[BaseModel], name: str) -> bool:
    # The contract validates IPs as strings; its JSON Schema says they are IPs.
    schema = model.model_json_schema()["properties"][name]
    formats = {schema.get("format")} | {s.get("format") for s in schema.get("anyOf", [])}
    return bool(formats & _IP_FORMATS)


def expected_fields(model: type[BaseModel] = ClickEvent, prefix: str = "") -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        base = _unwrap(info.annotation)
        if _is_ip(model, name):
            fields[path] = "ip"
        elif base is GeoPoint:
            fields[path] = "geo_point"
        elif isinstance(base, type) and issubclass(base, BaseModel):
            fields.update(expected_fields(base, f"{path}."))
        else:
            fields[path] = _opensearch_type(name, info.annotation)
    return fields


def mapped_fields(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            assert spec.get("type", "object") == "object", f"{path}: nested objects not intended"
            assert spec.get("dynamic") in (None, "strict"), f"{path} relaxes dynamic mapping"
            fields.update(mapped_fields(spec["properties"], f"{path}."))
            continue
        fields[path] = spec["type"]
        for sub, sub_spec in spec.get("fields", {}).items():
            fields[f"{path}.{sub}"] = sub_spec["type"]
    return fields


@pytest.fixture(scope="module")
def assets() -> Any:
    return load_assets(ASSETS_DIR, retention_days=7)


@pytest.fixture(scope="module")
def mapping(assets: Any) -> dict[str, str]:
    return mapped_fields(assets.template["template"]["mappings"]["properties"])


def test_every_event_field_is_mapped_with_its_intended_type(mapping: dict[str, str]) -> None:
    expected = expected_fields()
    assert {name: mapping.get(name) for name in expected} == expected


def test_every_mapped_field_is_an_event_field_or_a_declared_derived_one(
    mapping: dict[str, str],
) -> None:
    extra = {name: kind for name, kind in mapping.items() if name not in expected_fields()}
    assert extra == {**MULTI_FIELDS, **DERIVED_FIELDS}


def test_a_complete_event_as_the_sink_sends_it_fits_the_mapping(mapping: dict[str, str]) -> None:
    event = ClickEvent.model_validate(
        {
            "event_id": "6f1c1b7e-1f53-4d4b-8a8e-2b1f2d3c4e5f",
            "timestamp": "2025-01-02T03:04:05.678+00:00",
            "user_id": "user-1",
            "session_id": "session-1",
            "event_type": EventType.PURCHASE,
            "page_url": "https://shop.example.com/checkout",
            "referrer": "https://www.google.com/",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            "ip_address": "2001:db8::1",
            "device_type": "desktop",
            "product_id": "P-1",
            "product_category": "books",
            "price": "19.99",
            "search_query": "red shoes",
            "element_id": "buy",
            "viewport_size": "1920x1080",
            "geo": {"country": "FI", "city": "Helsinki", "location": {"lat": 60.17, "lon": 24.94}},
        }
    )
    document = json.loads(encode(event)[1])

    def leaves(value: dict[str, Any], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, item in value.items():
            path = f"{prefix}{key}"
            if isinstance(item, dict) and mapping.get(path) != "geo_point":
                out |= leaves(item, f"{path}.")
            else:
                out.add(path)
        return out

    assert leaves(document) <= set(mapping)
    assert isinstance(document["price"], float)


def test_money_is_stored_in_exact_cents(assets: Any) -> None:
    price = assets.template["template"]["mappings"]["properties"]["price"]
    optional = ClickEvent.model_fields["price"].annotation
    (annotated,) = [arg for arg in get_args(optional) if arg is not type(None)]
    constraints = {
        name: getattr(meta, name)
        for info in get_args(annotated)[1:]
        for meta in getattr(info, "metadata", [])
        for name in ("decimal_places", "le")
        if getattr(meta, name, None) is not None
    }
    # Every price the contract allows is a whole number of 1/scaling_factor...
    assert price == {"type": "scaled_float", "scaling_factor": 10 ** constraints["decimal_places"]}
    # ...and the largest one still fits the long that scaled_float stores.
    assert constraints["le"] * price["scaling_factor"] < 2**63


def test_template_settings(assets: Any) -> None:
    template = assets.template
    assert template["index_patterns"] == [INDEX_PATTERN]
    settings = template["template"]["settings"]["index"]
    assert settings["number_of_shards"] == "1"
    assert settings["default_pipeline"] == PIPELINE_ID
    # strict: a typo'd field is rejected (to the Connect DLQ), never silently mapped.
    assert template["template"]["mappings"]["dynamic"] == "strict"


def test_ingest_pipeline_writes_only_mapped_fields(assets: Any, mapping: dict[str, str]) -> None:
    processors = [next(iter(p.items())) for p in assets.pipeline["processors"]]
    kinds = [kind for kind, _ in processors]
    assert kinds == ["set", "script", "user_agent"]
    set_spec = processors[0][1]
    assert set_spec["field"] == "ingested_at"
    assert "_ingest.timestamp" in set_spec["value"]
    assert "ctx.ingest_delay_ms" in processors[1][1]["source"]
    user_agent = processors[2][1]
    # The default target (user_agent) would overwrite the event's own text field.
    assert user_agent["field"] == "user_agent"
    assert user_agent["target_field"] == "user_agent_details"
    written = {"ingested_at", "ingest_delay_ms"} | {
        f"user_agent_details.{prop}" for prop in user_agent["properties"]
    }
    for field in written:
        assert any(name == field or name.startswith(f"{field}.") for name in mapping), field


def test_the_user_agent_parser_runs_only_on_a_user_agent_the_event_model_accepts() -> None:
    """Its time grows with the square of the length (64 KiB: over a minute per document),
    and the sink indexes whatever the topic holds: the bound is the model's."""
    pipeline = json.loads((ASSETS_DIR / "ingest-pipeline.json").read_text())
    (user_agent,) = [p["user_agent"] for p in pipeline["processors"] if "user_agent" in p]
    limit = ClickEvent.model_json_schema()["properties"]["user_agent"]["maxLength"]
    assert user_agent["if"] == (
        f"ctx.user_agent instanceof String && ctx.user_agent.length() <= {limit}"
    )


def test_ism_policy_deletes_matching_indices_after_the_retention(assets: Any) -> None:
    policy = assets.policy["policy"]
    assert policy["ism_template"][0]["index_patterns"] == [INDEX_PATTERN]
    states = {state["name"]: state for state in policy["states"]}
    assert states["delete"]["actions"] == [{"delete": {}}]
    (transition,) = states[policy["default_state"]]["transitions"]
    assert transition == {"state_name": "delete", "conditions": {"min_index_age": "7d"}}
    changed = with_retention(assets.policy, 3)["policy"]["states"][0]["transitions"][0]
    assert changed["conditions"] == {"min_index_age": "3d"}
    assert assets.policy["policy"]["states"][0]["transitions"][0] == transition  # not mutated


# --- the saved objects -------------------------------------------------------------


REQUIRED_PANELS = {
    "clickstream-event-stream",
    "clickstream-events-per-minute",
    "clickstream-active-sessions",
    "clickstream-top-pages",
    "clickstream-funnel",
    "clickstream-revenue-over-time",
    "clickstream-device-split",
    "clickstream-browser-split",
    "clickstream-geo-map",
    "clickstream-top-searches",
    "clickstream-pipeline-indexed",
    "clickstream-pipeline-delay",
}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    lines = (ASSETS_DIR / SAVED_OBJECTS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def by_type(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["type"] == kind]


def test_ids_are_unique_and_readable(objects: list[dict[str, Any]]) -> None:
    keys = [(obj["type"], obj["id"]) for obj in objects]
    assert len(keys) == len(set(keys))
    # Readable, fixed ids (not generated UUIDs) are what makes overwrite-on-import replace.
    for obj in objects:
        assert re.fullmatch(r"clickstream-[a-z0-9-]+", obj["id"]), obj["id"]
        assert obj["type"] in {"index-pattern", "search", "visualization", "dashboard"}


#: Params a field format has by default: Dashboards drops them when it saves an index
#: pattern, so an asset that spells them out would never compare equal after that.
FORMAT_DEFAULT_PARAMS = {"duration": {"outputPrecision": 2}}


def test_index_patterns(objects: list[dict[str, Any]], mapping: dict[str, str]) -> None:
    patterns = {obj["id"]: obj["attributes"] for obj in by_type(objects, "index-pattern")}
    # Event time for the traffic panels; indexing time for the pipeline-health ones.
    assert {pid: attrs["timeFieldName"] for pid, attrs in patterns.items()} == {
        "clickstream-events": "timestamp",
        "clickstream-events-ingested": "ingested_at",
    }
    for attributes in patterns.values():
        assert attributes["title"] == INDEX_PATTERN
        assert mapping[attributes["timeFieldName"]] == "date"
        for field, field_format in json.loads(attributes["fieldFormatMap"]).items():
            assert field in mapping
            defaults = FORMAT_DEFAULT_PARAMS.get(field_format["id"], {})
            spelled_out = {k: v for k, v in field_format["params"].items() if defaults.get(k) == v}
            assert not spelled_out, (field, spelled_out)


def _index_pattern_of(obj: dict[str, Any]) -> str:
    (ref,) = [ref for ref in obj["references"] if ref["type"] == "index-pattern"]
    return str(ref["id"])


def test_time_histograms_use_their_index_patterns_time_field(
    objects: list[dict[str, Any]],
) -> None:
    """The dashboard's time filter applies to the index pattern's time field.

    A histogram over another date field would drop whatever falls outside the time
    range by that field: late events from "indexed per minute", delays longer than
    the range from the delay panel.
    """
    time_fields = {
        obj["id"]: obj["attributes"]["timeFieldName"] for obj in by_type(objects, "index-pattern")
    }
    histograms = 0
    for obj in by_type(objects, "visualization"):
        vis_state = json.loads(obj["attributes"]["visState"])
        for agg in vis_state.get("aggs", []):
            if agg["type"] == "date_histogram":
                histograms += 1
                assert agg["params"]["field"] == time_fields[_index_pattern_of(obj)], obj["id"]
    assert histograms >= 5
    for panel in ("clickstream-pipeline-indexed", "clickstream-pipeline-delay"):
        (obj,) = [o for o in objects if o["id"] == panel]
        assert _index_pattern_of(obj) == "clickstream-events-ingested"


def test_every_reference_resolves_inside_the_file(objects: list[dict[str, Any]]) -> None:
    present = {(obj["type"], obj["id"]) for obj in objects}
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), obj["id"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, (obj["id"], ref)
        used = set()
        meta = obj["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            source = json.loads(meta["searchSourceJSON"])
            assert "index" not in source, "use indexRefName + references"
            if "indexRefName" in source:
                used.add(source["indexRefName"])
        if obj["type"] == "dashboard":
            used |= {panel["panelRefName"] for panel in json.loads(obj["attributes"]["panelsJSON"])}
        assert used == set(names), obj["id"]


def test_dashboard_is_live_and_complete(objects: list[dict[str, Any]]) -> None:
    (dashboard,) = by_type(objects, "dashboard")
    assert dashboard["id"] == "clickstream-live"
    attributes = dashboard["attributes"]
    assert attributes["title"] == "Clickstream – live"
    assert attributes["timeRestore"] is True
    assert attributes["timeFrom"] == "now-15m"
    assert attributes["timeTo"] == "now"
    assert attributes["refreshInterval"]["pause"] is False
    assert attributes["refreshInterval"]["value"] > 0
    assert {ref["id"] for ref in dashboard["references"]} >= REQUIRED_PANELS
    panels = json.loads(attributes["panelsJSON"])
    assert len({panel["panelIndex"] for panel in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridData"]
        assert grid["x"] + grid["w"] <= 48
        assert grid["i"] == panel["panelIndex"]


def _kuery_fields(query: str) -> set[str]:
    return set(re.findall(r"([A-Za-z_][\w.]*)\s*:", query))


def _query_dsl_fields(body: Any) -> tuple[set[str], set[str]]:
    """(fields aggregated on, fields queried) in an OpenSearch request body."""
    aggregated: set[str] = set()
    queried: set[str] = set()
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "field":
                aggregated.add(value)
            elif key in {"term", "terms", "wildcard", "prefix", "match", "range"}:
                queried |= set(value)
            else:
                inner = _query_dsl_fields(value)
                aggregated |= inner[0]
                queried |= inner[1]
    elif isinstance(body, list):
        for item in body:
            inner = _query_dsl_fields(item)
            aggregated |= inner[0]
            queried |= inner[1]
    return aggregated, queried


def _visualization_fields(vis_state: dict[str, Any]) -> tuple[set[str], set[str]]:
    if vis_state["type"] == "vega":
        spec = json.loads(vis_state["params"]["spec"])  # kept strict JSON so it can be checked
        url = spec["data"]["url"]
        assert url["index"] == INDEX_PATTERN
        aggregated, queried = _query_dsl_fields(url["body"])
        return aggregated | {url["%timefield%"]}, queried
    aggregated = {agg["params"]["field"] for agg in vis_state["aggs"] if "field" in agg["params"]}
    return aggregated, set()


def test_visualizations_use_aggregatable_mapped_fields(
    objects: list[dict[str, Any]], mapping: dict[str, str]
) -> None:
    for obj in by_type(objects, "visualization"):
        vis_state = json.loads(obj["attributes"]["visState"])
        assert vis_state["title"] == obj["attributes"]["title"]
        aggregated, queried = _visualization_fields(vis_state)
        source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        queried |= _kuery_fields(source["query"]["query"])
        for field in aggregated:
            assert mapping.get(field) in AGGREGATABLE, (obj["id"], field, mapping.get(field))
        for field in queried:
            assert field in mapping, (obj["id"], field)
        if vis_state["type"] != "vega":
            patterns = {"clickstream-events", "clickstream-events-ingested"}
            assert obj["references"][0]["id"] in patterns


def test_event_stream_search(objects: list[dict[str, Any]], mapping: dict[str, str]) -> None:
    (search,) = by_type(objects, "search")
    assert search["attributes"]["sort"] == [["timestamp", "desc"]]
    for column in search["attributes"]["columns"]:
        assert column in mapping
    for field, _ in search["attributes"]["sort"]:
        assert mapping[field] in AGGREGATABLE


def test_funnel_steps_follow_the_site_layout(objects: list[dict[str, Any]]) -> None:
    (funnel,) = [obj for obj in objects if obj["id"] == "clickstream-funnel"]
    spec = json.loads(json.loads(funnel["attributes"]["visState"])["params"]["spec"])
    steps = spec["data"]["url"]["body"]["aggs"]["steps"]["filters"]["filters"]
    assert list(steps) == sorted(steps)  # the names sort into funnel order
    assert steps["1 Page view"] == {"term": {"event_type": "page_view"}}
    assert steps["2 Product page"] == {"wildcard": {"page_url": {"value": "*/product/*"}}}
    assert steps["3 Add to cart"] == {"term": {"event_type": "add_to_cart"}}
    assert steps["4 Checkout"] == {"wildcard": {"page_url": {"value": "*/checkout"}}}
    assert steps["5 Purchase"] == {"term": {"event_type": "purchase"}}
    assert spec["transform"][0]["fold"] == list(steps)


def test_funnel_says_its_steps_are_counted_independently(objects: list[dict[str, Any]]) -> None:
    """Each step is a separate filter over the range: no order within a session.

    Until the request computes an ordered funnel, the panel must not read as one.
    """
    (funnel,) = [obj for obj in objects if obj["id"] == "clickstream-funnel"]
    spec = json.loads(json.loads(funnel["attributes"]["visState"])["params"]["spec"])
    assert "filters" in spec["data"]["url"]["body"]["aggs"]["steps"]  # independent buckets
    assert "any order" in funnel["attributes"]["title"]
    assert "not an ordered funnel" in funnel["attributes"]["description"]
    assert "no order" in spec["description"]
    assert "conversion" not in funnel["attributes"]["title"].lower()
