"""The design's reference producer pointed unchanged at our topic: every event counted once.

Messages shaped exactly like its ``producer.py`` writes them (see
``support.design_producer``): keyed by user_id, no event_id / device_type /
viewport_size, float prices, ``+00:00`` timestamps, plus byte-identical
re-sends. The real aggregator counts each distinct message once (ids derived
from the bytes), stores the device as unknown, and ``clickstream-verify``,
recomputing the ids itself, agrees. The same test runs on Apache Kafka in
``tests/real``.
"""

from __future__ import annotations

import json
from decimal import Decimal

from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_ops.verify.run import verify
from clickstream_ops.verify.settings import VerifySettings
from clickstream_schema import decode
from support.aggregator import running_aggregator, settings_from_env, wait_applied
from support.design_producer import design_messages, publish, with_resends
from support.reference import differences, rows_of, stored_rows

EVENTS = 1200


async def test_the_design_producers_events_are_counted_exactly(
    topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    original = design_messages(EVENTS, seed=17)
    sent = with_resends(original, share=0.08)
    bootstrap = service_env["KAFKA_BOOTSTRAP_SERVERS"]
    await publish(bootstrap, topics.events, sent)

    async with running_aggregator(settings_from_env(service_env)) as task:
        await wait_applied(database.dsn, topics.group, topics.events, len(sent), running=task)
        stored = await stored_rows(database.dsn)

    # Expected rows from the distinct messages (deduplicated by their bytes here,
    # not by the derived id), in send order: a session stays in its user's partition.
    distinct = list(dict.fromkeys(v for _k, v in sent))
    assert len(distinct) == len(original)
    expected = rows_of(decode(v) for v in distinct)
    assert differences(expected, stored) == []
    assert sum(r["total_events"] for r in stored.values()) == len(original)
    assert {r["device_type"] for r in stored.values()} == {"unknown"}
    purchases = [json.loads(v) for v in distinct if b'"purchase"' in v]
    assert sum((r["total_revenue"] for r in stored.values()), Decimal(0)) == sum(
        (Decimal(f"{e['price']:.2f}") for e in purchases), Decimal("0.00")
    )


async def test_verify_recomputes_the_derived_ids_and_agrees(
    topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    original = design_messages(EVENTS, seed=19)
    sent = with_resends(original, share=0.08)
    await publish(service_env["KAFKA_BOOTSTRAP_SERVERS"], topics.events, sent)
    async with running_aggregator(settings_from_env(service_env)) as task:
        await wait_applied(database.dsn, topics.group, topics.events, len(sent), running=task)

    fields = VerifySettings.model_fields
    settings = VerifySettings.model_validate(
        {k.lower(): v for k, v in service_env.items() if k.lower() in fields}
    )
    report = await verify(settings)
    assert report.ok, report.as_json()
    counts = report.counts
    assert counts.messages == len(sent)
    assert counts.applied == len(original)
    assert counts.deduplicated == len(sent) - len(original)
    assert counts.derived_ids == len(sent)
    assert counts.dead_lettered == 0
    # The design keys by user: no re-send's first copy was on another partition.
    assert counts.cross_partition_duplicates == 0
