"""The real servers start, answer and carry data (what every other test here relies on)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from clickstream_devstack.environment import KafkaTopics
from clickstream_devstack.servers.jvm.connect import KafkaConnect
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.jvm.opensearch import OpenSearch
from support.tls_certs import TlsFiles


async def test_apache_kafka_round_trip_on_plaintext_and_ssl(
    kafka: ApacheKafka, topics: KafkaTopics, kafka_tls_files: TlsFiles
) -> None:
    files = kafka_tls_files
    ssl_options = kafka.ssl_client_options(files.client_cert, files.client_key)
    producer = AIOKafkaProducer(**ssl_options, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topics.events, b"over-tls", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topics.events, **kafka.client_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert (record.value, record.offset) == (b"over-tls", sent.offset)


def test_connect_worker_has_the_stock_transforms_and_file_sink(
    kafka_connect: KafkaConnect,
) -> None:
    plugins = {
        p["class"] for p in kafka_connect.request("GET", "/connector-plugins?connectorsOnly=false")
    }
    assert "org.apache.kafka.connect.file.FileStreamSinkConnector" in plugins
    assert "org.apache.kafka.connect.transforms.TimestampRouter" in plugins
    assert "org.apache.kafka.connect.transforms.ValueToKey" in plugins


def test_opensearch_has_the_modules_our_assets_need(opensearch: OpenSearch) -> None:
    nodes = opensearch.request("GET", "/_nodes/plugins")["nodes"]
    (node,) = nodes.values()
    modules = {m["name"] for m in node["modules"]}
    assert {
        "lang-painless",
        "lang-mustache",
        "ingest-common",
        "ingest-user-agent",
        "mapper-extras",
    } <= modules
    started = time.time()
    result = opensearch.request(
        "POST",
        "/_ingest/pipeline/_simulate",
        {
            "pipeline": {
                "processors": [
                    {"script": {"source": "ctx.twice = ctx.n * 2"}},
                    {"set": {"field": "at", "value": "{{{_ingest.timestamp}}}"}},
                ]
            },
            "docs": [{"_source": {"n": 21}}],
        },
    )
    source = result["docs"][0]["doc"]["_source"]
    assert source["twice"] == 42
    assert source["at"][:4] == time.strftime("%Y", time.gmtime(started))
