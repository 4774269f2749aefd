"""Producer → Apache Kafka → the real Kafka Connect runtime → OpenSearch 2.19, beside the
aggregator → PostgreSQL.

Aiven's OpenSearch sink is not on Maven Central (and is neither vendored nor built
here), so the worker runs the **converters, transforms, predicates and error settings
of connect/opensearch-sink.json** in front of the stock ``FileStreamSink``. Stock
parts cannot print a key, so a test-only transform appended after our chain shows
what the sink would be handed: ``InsertField$Value`` writes the topic our chain made
(TimestampRouter's index name) and the record's position into the printed value, and
a second connector with the same chain plus a failing ``Cast$Key`` puts every key our
chain made into its dead-letter headers. The test then does what Aiven's sink does
with each record: index it into that index with document id = that key, skipping a
record without a key (the sink's ``drop.invalid.message``).

Checked: one document per distinct event id (duplicates overwrite), each in the
daily index of its event time, an unknown field rejected by the strict mapping,
``ingested_at``/``ingest_delay_ms``/``user_agent_details.*`` on every document,
``price`` sums equal to ``total_revenue`` in PostgreSQL per session, tombstones
dropped, unconvertible records in the connector's dead-letter topic with Connect's
context headers, and every dashboard panel's query (the Vega funnel's request body
included) against values computed from the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.jvm.connect import ConnectRestError, KafkaConnect
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.jvm.opensearch import OpenSearch
from clickstream_producer.main import run as run_producer
from clickstream_producer.settings import ProducerSettings
from clickstream_runtime.settings import load
from clickstream_schema import INDEX_PATTERN, INDEX_PREFIX, ClickEvent, decode
from real.test_opensearch_setup import (  # noqa: F401 - clean: a fixture, found by name
    _apply,
    clean,
    parse_instant,
)
from support.aggregator import running_aggregator, settings_from_env, wait_applied
from support.feed import read_all, read_back

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR_FILE = ROOT / "connect" / "opensearch-sink.json"
SAVED_OBJECTS = ROOT / "opensearch" / "dashboards" / "clickstream-live.ndjson"
PRODUCED = 3000
# Just before midnight UTC: the events fall on two days, so the router makes two indices.
START = datetime(2026, 11, 1, 23, 58, tzinfo=UTC)
DUPLICATES = 60


@dataclass
class Extras:
    """Messages beside the producer's: what real topics also carry."""

    duplicates: list[ClickEvent]
    unknown_field_id: str
    null_id_session: str


def _payload(event: ClickEvent, **changes: object) -> bytes:
    return orjson.dumps({**orjson.loads(event.model_dump_json()), **changes})


async def _publish_extras(kafka: ApacheKafka, topic: str, events: list[ClickEvent]) -> Extras:
    """Duplicates, an unknown field, a null event_id, a tombstone, non-JSON, a JSON array.

    Each carries the record timestamp our producer would give it (the event time), so a
    duplicate is routed to the same daily index as its original.
    """
    purchases = [e for e in events if e.event_type.value == "purchase"]
    duplicates = (purchases[:10] + events[: DUPLICATES - min(10, len(purchases))])[:DUPLICATES]
    base = events[len(events) // 2]
    unknown_id = str(uuid.uuid4())
    messages: list[tuple[bytes, bytes | None, int]] = [
        (e.session_id.encode(), _payload(e), _ms(e)) for e in duplicates
    ]
    messages += [
        (base.session_id.encode(), _payload(base, event_id=unknown_id, user_idd="typo"), _ms(base)),
        (base.session_id.encode(), _payload(base, event_id=None), _ms(base)),
        (base.session_id.encode(), None, _ms(base)),  # tombstone
        (base.session_id.encode(), b"not json {", _ms(base)),
        (base.session_id.encode(), b"[1, 2, 3]", _ms(base)),
    ]
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    try:
        for key, value, ts in messages:
            await producer.send_and_wait(topic, value, key=key, timestamp_ms=ts)
    finally:
        await producer.stop()
    return Extras(duplicates, unknown_id, base.session_id)


def _ms(event: ClickEvent) -> int:
    return int(event.timestamp.timestamp() * 1000)


def _day_index(event: ClickEvent) -> str:
    return INDEX_PREFIX + event.timestamp.astimezone(UTC).strftime("%Y.%m.%d")


# --- the Connect side ----------------------------------------------------------------------


def _connector_config(
    topics: KafkaTopics, dlq: str, out: Path, tail: dict[str, str]
) -> dict[str, str]:
    """Our connector file with the stock FileStreamSink in place of Aiven's sink.

    Every key of the file stays: the worker applies its converters, transforms,
    predicates and errors.* settings exactly as given (the sink-only ones go unused).
    ``tail`` appends test-only transforms after ours, to make their output visible.
    """
    config: dict[str, str] = json.loads(CONNECTOR_FILE.read_text())
    config.pop("name")
    (alias,) = {key.split(".")[1] for key in tail if key.startswith("transforms.")}
    config |= {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "file": str(out),
        "topics": topics.events,
        "errors.deadletterqueue.topic.name": dlq,
        "errors.deadletterqueue.topic.replication.factor": "1",
        "transforms": f"{config['transforms']},{alias}",
        **tail,
    }
    return config


#: FileStreamSink prints each value (a Java map); this tail adds what it would not show:
#: the topic after our chain (TimestampRouter's index name) and the record's position.
SHOW_INDEX = {
    "transforms.showIndex.type": "org.apache.kafka.connect.transforms.InsertField$Value",
    "transforms.showIndex.topic.field": "__index",
    "transforms.showIndex.partition.field": "__partition",
    "transforms.showIndex.offset.field": "__offset",
}
#: No stock sink prints keys: this tail fails on every string key, so the record goes to
#: the dead-letter topic with the key our chain made in the exception message.
SHOW_KEY = {
    "transforms.showKey.type": "org.apache.kafka.connect.transforms.Cast$Key",
    "transforms.showKey.spec": "int8",
    "errors.log.enable": "false",  # one failure per record: keep the worker log short
}


@dataclass(frozen=True)
class Sunk:
    """One record as the sink got it: where from, the index our chain named, its key."""

    partition: int
    offset: int
    index: str
    key: str | None


def _sink_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _positions_and_indices(lines: list[str]) -> list[tuple[int, int, str]]:
    out = []
    for line in lines:
        index = re.search(r"__index=([^,}]+)", line)
        partition = re.search(r"__partition=(\d+)", line)
        offset = re.search(r"__offset=(\d+)", line)
        assert index, line
        assert partition, line
        assert offset, line
        out.append((int(partition[1]), int(offset[1]), index[1]))
    return out


def _keys_from(dead: list[Any]) -> dict[tuple[int, int], str]:
    """(partition, offset) -> the key our chain made, from the showKey failures."""
    keys = {}
    for _p, _o, headers, _key, _value in dead:
        message = headers.get("__connect.errors.exception.message", b"").decode()
        # Cast's own words: "Value (<key>) was out of range for requested data type".
        shown = re.fullmatch(r"Value \((.*)\) was out of range for requested data type", message)
        if shown:
            position = (
                int(headers["__connect.errors.partition"]),
                int(headers["__connect.errors.offset"]),
            )
            keys[position] = shown[1]
    return keys


def _wait_for(condition: Any, what: str, timeout: float = 600.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


async def _dead_letters(kafka: ApacheKafka, topic: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 600
    while True:
        dead = await read_all(kafka.bootstrap, topic, 1)
        if len(dead) >= count or time.monotonic() > deadline:
            return dead
        await asyncio.sleep(0.5)


# --- the sink's part, done by the test --------------------------------------------------------


def _index_like_the_sink(
    opensearch: OpenSearch,
    sunk: list[Sunk],
    messages: dict[tuple[int, int], tuple[bytes | None, bytes | None]],
) -> list[Any]:
    """Bulk-index as Aiven's sink does (index op, id = key); return the rejected items."""
    lines: list[bytes] = []
    for record in sunk:
        if record.key is None:  # drop.invalid.message: no document id, logged and skipped
            continue
        value = messages[(record.partition, record.offset)][1]
        assert value is not None
        lines.append(orjson.dumps({"index": {"_index": record.index, "_id": record.key}}))
        lines.append(value)
    rejected = []
    for start in range(0, len(lines), 1000):
        body = b"\n".join(lines[start : start + 1000]) + b"\n"
        answer = _bulk(opensearch.url, body)
        rejected += [
            item["index"] for item in answer["items"] if item["index"].get("status", 200) >= 300
        ]
    return rejected


def _bulk(url: str, body: bytes) -> Any:
    request = urllib.request.Request(
        f"{url}/_bulk?refresh=wait_for",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-ndjson"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _search(opensearch: OpenSearch, body: dict[str, Any], index: str = INDEX_PATTERN) -> Any:
    return opensearch.request("POST", f"/{index}/_search", body)


def _count(opensearch: OpenSearch, query: dict[str, Any] | None = None) -> int:
    body = {"query": query} if query else None
    return int(opensearch.request("POST", f"/{INDEX_PATTERN}/_count", body)["count"])


# --- the test -------------------------------------------------------------------------------


@pytest.fixture
def connectors(kafka_connect: KafkaConnect) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = (f"clickstream-sink-{suffix}", f"clickstream-keys-{suffix}")
    yield names
    for name in names:
        with contextlib.suppress(ConnectRestError):
            kafka_connect.delete_connector(name)


@pytest.mark.timeout(1200)  # two connectors over 3,000 events on a shared 2-core machine
async def test_events_through_connect_into_opensearch_match_postgresql(
    kafka: ApacheKafka,
    topics: KafkaTopics,
    database: Database,
    service_env: dict[str, str],
    kafka_connect: KafkaConnect,
    clean: OpenSearch,  # noqa: F811 - the fixture imported above
    connectors: tuple[str, str],
    tmp_path: Path,
) -> None:
    opensearch = clean
    await _apply(opensearch.url)  # template and pipeline before the first index exists

    settings = load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic=topics.events,
        producer_events=PRODUCED,
        producer_rate=0,
        producer_seed=5,
        producer_users=300,
        producer_concurrent_sessions=100,
        producer_start=START,
    )
    await run_producer(settings, asyncio.Event())
    produced = [decode(v) for *_, v in await read_back(kafka.bootstrap, topics.events, 6)]
    assert len(produced) == PRODUCED
    extras = await _publish_extras(kafka, topics.events, produced)
    total_messages = PRODUCED + DUPLICATES + 5

    messages = {(p, o): (k, v) for p, o, k, v in await read_back(kafka.bootstrap, topics.events, 6)}
    assert len(messages) == total_messages

    sink, probe = connectors
    dlq, probe_dlq = f"{topics.events}-connect-dlq", f"{topics.events}-keys-dlq"
    out, probe_out = tmp_path / "sink.txt", tmp_path / "keys.txt"
    kafka_connect.put_connector(sink, _connector_config(topics, dlq, out, SHOW_INDEX))
    kafka_connect.put_connector(probe, _connector_config(topics, probe_dlq, probe_out, SHOW_KEY))
    # At the sink: everything but the tombstone (filtered) and the two dead letters.
    expected_sunk = total_messages - 3
    lines = await asyncio.to_thread(
        _wait_for,
        lambda: len(got := _sink_lines(out)) >= expected_sunk and got,
        f"{expected_sunk} records at the sink",
    )
    for name in connectors:
        states = [task["state"] for task in kafka_connect.status(name)["tasks"]]
        assert states == ["RUNNING"], (name, kafka_connect.status(name))
    # Every keyed record fails showKey; the two early failures land there too.
    probed = await _dead_letters(kafka, probe_dlq, expected_sunk - 1 + 2)
    keys = _keys_from(probed)
    assert len(keys) == expected_sunk - 1  # every keyed record; the keyless one passed Cast
    sunk = [Sunk(p, o, index, keys.get((p, o))) for p, o, index in _positions_and_indices(lines)]
    assert len(sunk) == expected_sunk

    # The transforms: key = event_id, topic = the daily index of the record timestamp.
    by_id = {str(e.event_id): e for e in produced}
    for record in sunk:
        value = orjson.loads(messages[(record.partition, record.offset)][1] or b"null")
        assert record.key == value["event_id"], record
        if value["event_id"] in by_id:
            assert record.index == _day_index(by_id[value["event_id"]])
    assert {r.index for r in sunk} == {_day_index(e) for e in produced}
    assert len({r.index for r in sunk}) == 2  # START is 2 minutes before midnight
    (keyless,) = [r for r in sunk if r.key is None]  # the null event_id, nothing else
    assert orjson.loads(messages[(keyless.partition, keyless.offset)][1] or b"")["event_id"] is None
    tombstones = [pos for pos, (_k, v) in messages.items() if v is None]
    assert len(tombstones) == 1
    assert tombstones[0] not in {(r.partition, r.offset) for r in sunk} | set(keys)

    # The dead-letter topic: the two records Connect could not convert or transform.
    dead = await _dead_letters(kafka, dlq, 2)
    assert sorted(value for *_, value in dead) == [b"[1, 2, 3]", b"not json {"]
    stages = set()
    for _partition, _offset, headers, key, _value in dead:
        assert key == extras.null_id_session.encode()
        assert headers["__connect.errors.topic"] == topics.events.encode()
        assert headers["__connect.errors.connector.name"] == sink.encode()
        assert {"__connect.errors.partition", "__connect.errors.offset"} <= set(headers)
        assert headers["__connect.errors.exception.class.name"]
        stages.add(headers["__connect.errors.stage"])
    assert stages == {b"VALUE_CONVERTER", b"TRANSFORMATION"}

    # Index them as the sink would; the strict mapping rejects the unknown field only.
    rejected = await asyncio.to_thread(_index_like_the_sink, opensearch, sunk, messages)
    assert [(r["_id"], r["error"]["type"]) for r in rejected] == [
        (extras.unknown_field_id, "strict_dynamic_mapping_exception")
    ]
    # One document per distinct event id: the duplicates overwrote theirs.
    assert _count(opensearch) == len(by_id) == PRODUCED
    indices = _search(opensearch, {"size": 0, "aggs": {"i": {"terms": {"field": "_index"}}}})
    assert {b["key"]: b["doc_count"] for b in indices["aggregations"]["i"]["buckets"]} == Counter(
        _day_index(e) for e in produced
    )
    for field in ("ingested_at", "ingest_delay_ms", "user_agent_details.name"):
        assert _count(opensearch, {"exists": {"field": field}}) == PRODUCED, field
    negative = _count(opensearch, {"range": {"ingest_delay_ms": {"lt": 0}}})
    assert negative == 0  # events of 2026-11-01 were indexed later, never earlier

    # PostgreSQL: the aggregator's revenue per session equals the price sums in OpenSearch.
    async with running_aggregator(settings_from_env(service_env)) as task:
        await wait_applied(database.dsn, topics.group, topics.events, total_messages, running=task)
    conn = await asyncpg.connect(database.dsn)
    try:
        rows = await conn.fetch("SELECT session_id, total_revenue FROM session_metrics")
    finally:
        await conn.close()
    postgres_revenue = {r["session_id"]: r["total_revenue"] for r in rows if r["total_revenue"]}
    answer = _search(
        opensearch,
        {
            "size": 0,
            "query": {"term": {"event_type": "purchase"}},
            "aggs": {
                "s": {
                    "terms": {"field": "session_id", "size": 10_000},
                    "aggs": {"revenue": {"sum": {"field": "price"}}},
                }
            },
        },
    )
    opensearch_revenue = {
        b["key"]: Decimal(str(round(b["revenue"]["value"], 2)))
        for b in answer["aggregations"]["s"]["buckets"]
        if b["revenue"]["value"]
    }
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for event in by_id.values():
        if event.event_type.value == "purchase" and event.price:
            expected[event.session_id] += event.price
    assert opensearch_revenue == postgres_revenue == dict(expected)
    assert len(expected) >= 10

    checked = _check_panels(opensearch, list(by_id.values()))
    print(  # the figures README quotes (visible with -s)
        f"\nopensearch_e2e messages={total_messages} sunk={len(sunk)} dead_letters={len(dead)} "
        f"documents={_count(opensearch)} indices={dict(Counter(_day_index(e) for e in produced))} "
        f"rejected={len(rejected)} sessions_with_revenue={len(expected)} "
        f"revenue={sum(expected.values())} panels_checked={checked}"
    )


# --- the dashboard panels ---------------------------------------------------------------------


#: Aggregations that need an OpenSearch module the Maven Central test node may lack.
NEEDS_MODULE = {"geohash_grid": "geo"}


def _check_panels(opensearch: OpenSearch, events: list[ClickEvent]) -> int:
    """Run each panel's query and compare its buckets with values computed from the events."""
    objects = [json.loads(line) for line in SAVED_OBJECTS.read_text().splitlines() if line]
    (node,) = opensearch.request("GET", "/_nodes/plugins")["nodes"].values()
    modules = {module["name"] for module in node["modules"]}
    not_checkable = []
    documents = {
        hit["_id"]: hit["_source"]
        for hit in _search(opensearch, {"size": 10_000, "query": {"match_all": {}}})["hits"]["hits"]
    }
    checked = set()
    for obj in objects:
        if obj["type"] != "visualization":
            continue
        vis_state = json.loads(obj["attributes"]["visState"])
        source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        missing = {
            NEEDS_MODULE[a["type"]]
            for a in vis_state.get("aggs", [])
            if NEEDS_MODULE.get(a["type"]) not in (None, *modules)
        }
        if missing:
            not_checkable.append((obj["id"], missing))
            continue
        if vis_state["type"] == "vega":
            _check_funnel(opensearch, vis_state, events)
        else:
            _check_aggregation_panel(opensearch, vis_state, source, documents)
        checked.add(obj["id"])
    # Every panel, the map included: the bench's node has the geo module (geohash_grid).
    assert not_checkable == []
    assert len(checked) == 13
    return len(checked)


def _kuery(query: str) -> dict[str, Any]:
    """The panels' only KQL form: empty, or ``field:value``."""
    if not query:
        return {"match_all": {}}
    field, value = query.split(":")
    return {"term": {field.strip(): value.strip()}}


def _matches(document: dict[str, Any], query: dict[str, Any]) -> bool:
    if "term" in query:
        ((field, value),) = query["term"].items()
        return bool(_value(document, field) == value)
    return True


def _value(document: dict[str, Any], path: str) -> Any:
    current: Any = document
    # A keyword sub-field (search_query.keyword) is its parent's text in _source.
    for part in path.removesuffix(".keyword").split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return current


def _to_dsl(agg: dict[str, Any]) -> dict[str, Any]:
    kind, params = agg["type"], agg["params"]
    if kind == "count":
        return {}
    if kind in ("cardinality", "sum", "avg", "max"):
        return {kind: {"field": params["field"]}}
    if kind == "percentiles":
        return {"percentiles": {"field": params["field"], "percents": params["percents"]}}
    if kind == "date_histogram":
        assert params["interval"] == "m"
        return {"date_histogram": {"field": params["field"], "fixed_interval": "1m"}}
    if kind == "terms":
        return {"terms": {"field": params["field"], "size": params["size"]}}
    if kind == "geohash_grid":
        return {"geohash_grid": {"field": params["field"], "precision": params["precision"]}}
    raise AssertionError(f"no translation for a {kind} aggregation")


def _bucket_key(agg: dict[str, Any], document: dict[str, Any]) -> Any:
    kind, field = agg["type"], agg["params"]["field"]
    value = _value(document, field)
    if value is None:
        return None
    if kind == "date_histogram":
        return int(parse_instant(value).timestamp()) // 60 * 60_000
    if kind == "geohash_grid":
        return _geohash(value["lat"], value["lon"], agg["params"]["precision"])
    return value


def _metric(agg: dict[str, Any], documents: list[dict[str, Any]]) -> Any:
    kind = agg["type"]
    if kind == "count":
        return len(documents)
    values = [v for d in documents if (v := _value(d, agg["params"]["field"])) is not None]
    if kind == "cardinality":
        return len(set(values))
    if kind == "sum":
        return round(sum(Decimal(str(v)) for v in values), 2)
    if kind == "avg":
        return round(sum(Decimal(str(v)) for v in values) / len(values), 2) if values else None
    if kind == "max":
        return max(values) if values else None
    if kind == "percentiles":
        return (min(values), max(values))
    raise AssertionError(kind)


def _answer_metric(agg: dict[str, Any], bucket: dict[str, Any]) -> Any:
    kind = agg["type"]
    if kind == "count":
        return bucket["doc_count"]
    value = bucket[f"m{agg['id']}"]
    if kind == "cardinality":
        return value["value"]
    if kind in ("sum", "avg"):
        return None if value["value"] is None else round(Decimal(str(value["value"])), 2)
    if kind == "max":
        return value["value"]
    if kind == "percentiles":
        return tuple(value["values"].values())
    raise AssertionError(kind)


def _check_aggregation_panel(
    opensearch: OpenSearch,
    vis_state: dict[str, Any],
    source: dict[str, Any],
    documents: dict[str, dict[str, Any]],
) -> None:
    """A standard visualization: metrics, optionally under one or two bucket levels."""
    query = _kuery(source["query"]["query"])
    metrics = [a for a in vis_state["aggs"] if a["schema"] == "metric"]
    buckets = [a for a in vis_state["aggs"] if a["schema"] != "metric"]
    inner = {f"m{a['id']}": _to_dsl(a) for a in metrics if a["type"] != "count"}
    aggs: dict[str, Any] = inner
    for level in reversed(buckets):
        aggs = {f"b{level['id']}": {**_to_dsl(level), **({"aggs": aggs} if aggs else {})}}
    answer = _search(opensearch, {"size": 0, "query": query, "aggs": aggs})
    selected = [d for d in documents.values() if _matches(d, query)]
    title = vis_state["title"]
    assert selected, f"{title}: no documents to check against"
    _compare_level(
        title, buckets, metrics, answer.get("aggregations", {}), answer["hits"], selected
    )


def _compare_level(
    title: str,
    buckets: list[dict[str, Any]],
    metrics: list[dict[str, Any]],
    answer: dict[str, Any],
    hits: dict[str, Any],
    documents: list[dict[str, Any]],
) -> None:
    if not buckets:
        whole = {**answer, "doc_count": hits["total"]["value"]} if "total" in hits else answer
        for metric in metrics:
            got, want = _answer_metric(metric, whole), _metric(metric, documents)
            if metric["type"] == "percentiles":
                low, high = want
                assert all(low <= p <= high for p in got), (title, got, want)
            elif metric["type"] == "avg":  # a double mean vs the exact one, both in cents
                assert abs(got - want) <= Decimal("0.01"), (title, got, want)
            else:
                assert got == want, (title, metric["type"], got, want)
        return
    level, rest = buckets[0], buckets[1:]
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for document in documents:
        key = _bucket_key(level, document)
        if key is not None:
            groups[key].append(document)
    found = answer[f"b{level['id']}"]
    got = found["buckets"]
    # Terms over several daily indices (shards) are approximate: each shard sends only its
    # top shard_size terms, so a count may miss up to doc_count_error_upper_bound.
    error = found.get("doc_count_error_upper_bound", 0)
    if level["type"] == "terms":
        size = level["params"]["size"]
        assert len(got) == min(size, len(groups)), title
        smallest_shown = min(b["doc_count"] for b in got)
        hidden = [len(g) for k, g in groups.items() if k not in {b["key"] for b in got}]
        assert all(n <= smallest_shown + error for n in hidden), (title, "not the top terms")
    else:
        assert {b["key"] for b in got if b["doc_count"]} == set(groups), title
    for bucket in got:
        if not bucket["doc_count"]:
            continue
        members = groups[bucket["key"]]
        if bucket["doc_count"] != len(members):
            assert len(members) - error <= bucket["doc_count"] <= len(members), (title, bucket)
            continue  # an approximate bucket: its sub-metrics cover only what was counted
        _compare_level(title, rest, metrics, bucket, {"total": {"value": len(members)}}, members)


_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def _geohash(lat: float, lon: float, precision: int) -> str:
    """Standard geohash (interleaved lon/lat bits, base32), for the map's buckets."""
    lat_range, lon_range = [-90.0, 90.0], [-180.0, 180.0]
    bits, even = 0, True
    out: list[str] = []
    bit_count = 0
    while len(out) < precision:
        rng, value = (lon_range, lon) if even else (lat_range, lat)
        middle = (rng[0] + rng[1]) / 2
        bits <<= 1
        if value >= middle:
            bits |= 1
            rng[0] = middle
        else:
            rng[1] = middle
        even = not even
        bit_count += 1
        if bit_count == 5:
            out.append(_BASE32[bits])
            bits, bit_count = 0, 0
    return "".join(out)


def _check_funnel(
    opensearch: OpenSearch, vis_state: dict[str, Any], events: list[ClickEvent]
) -> None:
    """The Vega spec's own request body, with Dashboards' %context% replaced by match_all."""
    spec = json.loads(vis_state["params"]["spec"])
    url = spec["data"]["url"]
    assert url["%context%"] is True  # Dashboards adds the time range and filters as the query
    answer = _search(opensearch, {**url["body"], "query": {"match_all": {}}}, url["index"])
    buckets = answer["aggregations"]["steps"]["buckets"]
    steps: dict[str, Callable[[ClickEvent], bool]] = {
        "1 Page view": lambda e: e.event_type.value == "page_view",
        "2 Product page": lambda e: "/product/" in e.page_url,
        "3 Add to cart": lambda e: e.event_type.value == "add_to_cart",
        "4 Checkout": lambda e: e.page_url.endswith("/checkout"),
        "5 Purchase": lambda e: e.event_type.value == "purchase",
    }
    assert set(buckets) == set(steps)
    for name, matches in steps.items():
        chosen = [e for e in events if matches(e)]
        assert buckets[name]["doc_count"] == len(chosen), name
        assert buckets[name]["sessions"]["value"] == len({e.session_id for e in chosen}), name
    assert buckets["5 Purchase"]["doc_count"] > 0
