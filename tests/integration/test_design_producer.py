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

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from structlog.testing import capture_logs

from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_ops.check.main import exit_status, line, run_checks
from clickstream_ops.check.results import Verdict
from clickstream_ops.check.settings import load_all
from clickstream_ops.report.main import ReportSettings, produce
from clickstream_ops.report.queries import Limits
from clickstream_ops.report.render import print_report
from clickstream_ops.verify.render import dead_letter_line
from clickstream_ops.verify.run import verify
from clickstream_ops.verify.settings import VerifySettings
from clickstream_runtime.settings import load
from clickstream_schema import decode
from support.aggregator import running_aggregator, settings_from_env, wait_applied, wait_relayed
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


async def test_a_producer_breaking_the_contract_is_loud_everywhere_people_look(
    topics: KafkaTopics,
    database: Database,
    service_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The design producer's events without ip_address: every one is dead-lettered.
    broken = [
        (
            key,
            json.dumps({k: v for k, v in json.loads(value).items() if k != "ip_address"}).encode(),
        )
        for key, value in design_messages(75, seed=23)
    ]
    await publish(service_env["KAFKA_BOOTSTRAP_SERVERS"], topics.events, broken)
    with capture_logs() as logged:
        async with running_aggregator(settings_from_env(service_env)) as task:
            await wait_applied(database.dsn, topics.group, topics.events, 75, running=task)
            await wait_relayed(database.dsn, timeout=60, running=task)

    # The aggregator's line says why, with the first error.
    lines = [e for e in logged if e["event"] == "dead_lettered"]
    assert sum(e["rows"] for e in lines) == 75
    assert all(e["log_level"] == "warning" for e in lines)
    assert sum(e["reasons"]["schema"] for e in lines) == 75
    assert "ip_address: Field required" in lines[0]["first_error"]

    # clickstream-check fails, naming the reason and the fix.
    monkeypatch.chdir(tmp_path)
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    results = await run_checks(load_all(), 5.0)
    [counting] = [r for r in results if r.service == "postgres" and r.step == "counting"]
    assert counting.verdict is Verdict.FAIL, line(counting)
    assert counting.detail.startswith(f"75 of the last 75 message(s) of {topics.events}")
    assert "(schema 75)" in counting.detail
    assert "ip_address: Field required" in counting.detail
    assert "event contract" in counting.fix
    assert exit_status(results) == 1

    # clickstream-report says it at the top.
    report_settings = load(ReportSettings)
    screen = io.StringIO()
    print_report(
        Console(file=screen, width=120, color_system=None),
        await produce(report_settings, Limits()),
    )
    top = screen.getvalue().splitlines()[:4]
    assert any(
        line.startswith("Dead-lettered 75 of 75 messages (100.0%), not counted: schema 75")
        for line in top
    ), top

    # clickstream-verify states the share and the reason beside its verdict.
    fields = VerifySettings.model_fields
    settings = VerifySettings.model_validate(
        {k.lower(): v for k, v in service_env.items() if k.lower() in fields}
    )
    report = await verify(settings)
    assert report.ok
    assert report.dead_letter_reasons == {"schema": 75}
    said = dead_letter_line(report)
    assert said is not None
    assert said.startswith("75 of 75 messages (100%) dead-lettered, not counted: schema 75;")
    assert "ip_address: Field required" in said
