"""Which services clickstream-check considers configured, and how bad settings show up."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import trustme

from clickstream_ops.check.main import exit_status, line, run_checks
from clickstream_ops.check.results import Verdict
from clickstream_ops.check.settings import load_all


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in list(os.environ):
        if name.upper().startswith(("KAFKA_", "POSTGRES_", "OPENSEARCH_")):
            monkeypatch.delenv(name)


def test_defaults_do_not_count_as_configured() -> None:
    settings = load_all()
    assert not settings.kafka.configured
    assert not settings.postgres.configured
    assert not settings.opensearch.configured
    assert not settings.dashboards.configured


def test_a_dotenv_file_configures_a_service(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("POSTGRES_HOST=db.example.com\nPOSTGRES_PASSWORD=s3cret\n")
    settings = load_all()
    assert settings.postgres.settings is not None
    assert settings.postgres.settings.postgres_host == "db.example.com"
    assert not settings.kafka.configured


async def test_nothing_configured_fails_on_kafka_and_skips_the_rest() -> None:
    # Without KAFKA_BOOTSTRAP_SERVERS the services would quietly use localhost:9092:
    # a doctor that skipped the broker must not say "all configured checks passed".
    results = await run_checks(load_all(), 1.0)
    assert [(r.service, r.verdict) for r in results] == [
        ("kafka", Verdict.FAIL),
        ("postgres", Verdict.SKIP),
        ("opensearch", Verdict.SKIP),
        ("dashboards", Verdict.SKIP),
    ]
    kafka = results[0]
    assert kafka.detail == (
        "KAFKA_BOOTSTRAP_SERVERS is not set: the aggregator and the producer would use "
        "localhost:9092"
    )
    assert "KAFKA_BOOTSTRAP_SERVERS=host:port" in kafka.fix
    assert all("not configured" in r.detail for r in results[1:])
    assert exit_status(results) == 1


async def test_malformed_settings_fail_at_the_settings_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "https://broker.example.com:443")
    monkeypatch.setenv("OPENSEARCH_URI", "opensearch.example.com:443")
    results = await run_checks(load_all(), 1.0)
    kafka = [r for r in results if r.service == "kafka"]
    assert kafka[0].verdict is Verdict.FAIL
    assert "is not host:port" in kafka[0].detail
    assert {r.detail for r in kafka[1:]} == {"not checked: settings failed"}
    [opensearch_settings] = [
        r for r in results if r.service == "opensearch" and r.step == "settings"
    ]
    assert opensearch_settings.verdict is Verdict.FAIL
    assert "OPENSEARCH_URI must be an http:// or https:// URL" in line(opensearch_settings)


async def test_every_bad_kafka_variable_is_named_without_library_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "https://broker.example.com:443")
    monkeypatch.setenv("KAFKA_TOPIC", "")
    results = await run_checks(load_all(), 1.0)
    [settings] = [r for r in results if r.service == "kafka" and r.step == "settings"]
    assert settings.verdict is Verdict.FAIL
    assert settings.detail == (
        "KAFKA_BOOTSTRAP_SERVERS: 'https://broker.example.com:443' is not host:port "
        "(no scheme, no path; several: a:9092,b:9092); KAFKA_TOPIC='': must not be empty"
    )
    assert (
        settings.fix
        == "fix the variable(s) named; KAFKA_BOOTSTRAP_SERVERS is host:port[,host:port...]"
    )


async def test_a_certificate_without_its_key_gets_no_host_port_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example.com:9093")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", str(tmp_path / "service.cert"))
    results = await run_checks(load_all(), 1.0)
    [settings] = [r for r in results if r.service == "kafka" and r.step == "settings"]
    assert settings.detail == (
        "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE must be set together (client certificate)"
    )
    assert settings.fix == "fix the variable(s) named"
    assert "Value error" not in line(settings)
    assert "KafkaCheckSettings" not in line(settings)


async def test_a_key_of_another_certificate_is_a_tls_failure_without_host_port_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    authority.issue_cert("client").cert_chain_pems[0].write_to_path(str(tmp_path / "service.cert"))
    authority.issue_cert("stranger").private_key_pem.write_to_path(str(tmp_path / "service.key"))
    (tmp_path / "service.key").chmod(0o600)
    # Something listens, so that the check gets past TCP to the TLS files.
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", str(tmp_path / "service.cert"))
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(tmp_path / "service.key"))
    try:
        results = await run_checks(load_all(), 2.0)
    finally:
        server.close()
        await server.wait_closed()

    kafka = {r.step: r for r in results if r.service == "kafka"}
    assert kafka["tcp"].verdict is Verdict.OK
    assert kafka["tls"].verdict is Verdict.FAIL
    assert "does not match KAFKA_SSL_CERTFILE" in kafka["tls"].detail
    assert "host:port" not in "\n".join(line(r) for r in kafka.values())
