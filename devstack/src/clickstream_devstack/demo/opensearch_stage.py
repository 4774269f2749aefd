"""``clickstream-demo --real``: the events topic into OpenSearch, then what OpenSearch holds.

Aiven's OpenSearch sink connector is not on Maven Central, so the demo does its
part itself, the way the connector is configured in ``connect/opensearch-sink.json``:
each message that is a JSON object with a string ``event_id`` becomes the document
of that id (a copy overwrites), in the daily index of its record timestamp (UTC),
through the index template and ingest pipeline that ``clickstream-setup
opensearch`` applies. The ISM policy is left out: its plugin is not on Maven
Central either. Then it prints what OpenSearch holds, beside PostgreSQL's figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from clickstream_devstack.environment import Broker
from clickstream_devstack.servers.jvm.opensearch import OpenSearch
from clickstream_devstack.servers.jvm.rest import NdJson
from clickstream_ops.setup.assets import find_assets_dir, load_assets
from clickstream_ops.setup.client import ApiClient
from clickstream_ops.setup.endpoint import Endpoint
from clickstream_ops.setup.opensearch import ensure_pipeline, ensure_template
from clickstream_schema import INDEX_PATTERN

#: Documents per ``_bulk`` request: 2,000 (the ingest pipeline parses every user
#: agent) ran past the 60 s request timeout on a heavily loaded machine; 500 keep
#: each request a quarter as long.
_BULK = 500


@dataclass(frozen=True)
class Indexed:
    documents: int
    distinct_ids: int
    rejected: int


async def apply_assets(opensearch: OpenSearch) -> dict[str, str]:
    """The pipeline, then the template that names it (``clickstream-setup``'s own code)."""
    assets = load_assets(find_assets_dir(None), retention_days=7)
    async with ApiClient(Endpoint("OpenSearch", opensearch.url)) as cluster:
        return {
            "ingest_pipeline": await ensure_pipeline(cluster, assets),
            "index_template": await ensure_template(cluster, assets),
        }


async def index_topic(
    kafka: Broker, topic: str, partitions: int, opensearch: OpenSearch
) -> Indexed:
    """Read the whole topic and index it as the sink would; return what was sent."""
    lines: list[bytes] = []
    ids: set[str] = set()
    rejected = 0
    sent = 0
    async for timestamp_ms, value in _messages(kafka, topic, partitions):
        event_id = _event_id(value)
        if event_id is None:
            continue  # the sink's drop.invalid.message; the aggregator dead-letters it
        day = datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y.%m.%d")
        index = INDEX_PATTERN.replace("*", day)
        lines += [orjson.dumps({"index": {"_index": index, "_id": event_id}}), value]
        ids.add(event_id)
        sent += 1
        if len(lines) >= 2 * _BULK:
            rejected += _bulk(opensearch, lines)
            lines = []
    if lines:
        rejected += _bulk(opensearch, lines)
    opensearch.request("POST", f"/{INDEX_PATTERN}/_refresh")
    return Indexed(sent, len(ids), rejected)


async def _messages(kafka: Broker, topic: str, partitions: int) -> AsyncIterator[tuple[int, bytes]]:
    """(record timestamp, value) of every message with a value, up to the end offsets."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(), enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.value:
                        yield record.timestamp, record.value
    finally:
        await consumer.stop()


def _event_id(value: bytes) -> str | None:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    event_id = parsed.get("event_id") if isinstance(parsed, dict) else None
    return event_id if isinstance(event_id, str) else None


def _bulk(opensearch: OpenSearch, lines: list[bytes]) -> int:
    """One ``_bulk`` request; the number of documents OpenSearch rejected."""
    answer = opensearch.request("POST", "/_bulk", NdJson(b"\n".join(lines) + b"\n"))
    return sum(1 for item in answer["items"] if item["index"].get("status", 200) >= 300)


async def show(console: Console, opensearch: OpenSearch, indexed: Indexed, dsn: str) -> None:
    """What OpenSearch holds: indices, documents, a few aggregations; PostgreSQL beside it."""
    indices = opensearch.request("GET", f"/_cat/indices/{INDEX_PATTERN}?format=json&s=index")
    answer = opensearch.request(
        "POST",
        f"/{INDEX_PATTERN}/_search",
        {
            "size": 0,
            "track_total_hits": True,
            "aggs": {
                "types": {"terms": {"field": "event_type", "size": 10}},
                "sessions": {"cardinality": {"field": "session_id"}},
                "revenue": {
                    "filter": {"term": {"event_type": "purchase"}},
                    "aggs": {"sum": {"sum": {"field": "price"}}},
                },
                "delay": {"percentiles": {"field": "ingest_delay_ms", "percents": [50, 99]}},
            },
        },
    )
    conn = await asyncpg.connect(dsn)
    try:
        pg = await conn.fetchrow(
            "SELECT count(*) AS sessions, coalesce(sum(total_events), 0) AS events, "
            "coalesce(sum(total_revenue), 0) AS revenue FROM session_metrics"
        )
    finally:
        await conn.close()
    aggs = answer["aggregations"]
    table = Table(title="OpenSearch (what the sink would have indexed) beside PostgreSQL")
    table.add_column("figure")
    table.add_column("OpenSearch", justify="right")
    table.add_column("PostgreSQL", justify="right")
    table.add_row(
        "documents (one per event_id)",
        f"{answer['hits']['total']['value']:,} of {indexed.distinct_ids:,} ids",
        f"{pg['events']:,} events applied",
    )
    table.add_row("sessions", f"{aggs['sessions']['value']:,} (approximate)", f"{pg['sessions']:,}")
    revenue = Decimal(str(aggs["revenue"]["sum"]["value"])).quantize(Decimal("0.01"))
    table.add_row("revenue (purchases)", f"${revenue:,}", f"${pg['revenue']:,}")
    for bucket in aggs["types"]["buckets"]:
        table.add_row(f"  {bucket['key']}", f"{bucket['doc_count']:,}", "")
    delay = aggs["delay"]["values"]
    table.add_row(
        "ingest delay p50 / p99 (indexed − event time)",
        f"{(delay.get('50.0') or 0):,.0f} / {(delay.get('99.0') or 0):,.0f} ms",
        "",
    )
    names = ", ".join(f"{row['index']} ({int(row['docs.count']):,})" for row in indices)
    console.print(f"OpenSearch indices: {names}", markup=False, highlight=False, soft_wrap=True)
    console.print(table)
    if indexed.rejected:
        console.print(f"{indexed.rejected} documents rejected by the strict mapping", markup=False)
