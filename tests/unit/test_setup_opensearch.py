"""``clickstream-setup opensearch`` against a local HTTP server that answers like OpenSearch.

The fake keeps state the way the cluster does (and answers GETs with the extras
the cluster adds: stringified settings, ISM defaults, seq_no), so idempotence
is tested through real HTTP: the second run must not write anything.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import email.parser
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from clickstream_ops.setup import main as setup_main
from clickstream_ops.setup.assets import PIPELINE_ID, POLICY_ID, TEMPLATE_NAME
from clickstream_ops.setup.client import Backoff, SetupError
from clickstream_ops.setup.compare import contains
from clickstream_ops.setup.endpoint import EndpointError, parse_endpoint
from clickstream_ops.setup.opensearch import setup_opensearch
from clickstream_ops.setup.settings import SetupSettings

ASSETS_DIR = Path(__file__).resolve().parents[2] / "opensearch"
USER, PASSWORD = "avnadmin", "s3cr3t-pw"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeOpenSearch:
    """OpenSearch + Dashboards in one: the routes clickstream-setup uses, with their state."""

    url: str = ""
    password: str = PASSWORD
    unavailable: int = 0  # the first N health probes answer 503
    import_errors: list[dict[str, Any]] | None = None
    pipelines: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, Any] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    saved_objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    seq_no: int = 0

    def writes(self) -> list[Recorded]:
        reads = {("POST", "/api/saved_objects/_bulk_get")}
        return [r for r in self.requests if r.method != "GET" and (r.method, r.path) not in reads]

    def route(self, r: Recorded) -> tuple[int, Any]:
        parts = r.path.strip("/").split("/")
        if r.path == "/_cluster/health":
            if self.unavailable > 0:
                self.unavailable -= 1
                return 503, {"error": "not ready"}
            return 200, {"status": "yellow"}
        if parts[:2] == ["_ingest", "pipeline"]:
            return self._pipeline(r, parts[2])
        if parts[0] == "_index_template":
            return self._template(r, parts[1])
        if parts[:2] == ["_plugins", "_ism"]:
            return self._ism(r, parts)
        if r.path == "/api/status":
            return 200, {"status": {"overall": {"state": "green"}}}
        if r.path.startswith("/api/"):
            return self._dashboards(r)
        return 404, {"error": f"no route {r.method} {r.path}"}

    def _pipeline(self, r: Recorded, name: str) -> tuple[int, Any]:
        if r.method == "PUT":
            self.pipelines[name] = json.loads(r.body)
            return 200, {"acknowledged": True}
        if name not in self.pipelines:
            return 404, {}
        return 200, {name: self.pipelines[name]}

    def _template(self, r: Recorded, name: str) -> tuple[int, Any]:
        if r.method == "PUT":
            body = json.loads(r.body)
            assert set(body) >= {"index_patterns", "template"}
            self.templates[name] = body
            return 200, {"acknowledged": True}
        if name not in self.templates:
            reason = f"index template matching [{name}] not found"
            return 404, {
                "error": {
                    "root_cause": [{"type": "resource_not_found_exception", "reason": reason}]
                }
            }
        stored = copy.deepcopy(self.templates[name])
        # Like OpenSearch: settings come back as strings.
        index = stored["template"]["settings"]["index"]
        stored["template"]["settings"]["index"] = {k: str(v) for k, v in index.items()}
        return 200, {"index_templates": [{"name": name, "index_template": stored}]}

    def _ism(self, r: Recorded, parts: list[str]) -> tuple[int, Any]:
        if parts[2] in ("add", "change_policy"):
            assert json.loads(r.body) == {"policy_id": POLICY_ID}
            return 200, {"updated_indices": 0, "failures": False, "failed_indices": []}
        name = parts[3]
        current = self.policies.get(name)
        if r.method == "GET":
            if current is None:
                return 404, {"error": {"type": "status_exception", "reason": "Policy not found"}}
            policy = copy.deepcopy(current["policy"])
            # Like ISM: bookkeeping and default retry settings added to what was PUT.
            policy |= {"policy_id": name, "last_updated_time": 1, "schema_version": 21}
            for state in policy["states"]:
                for action in state["actions"]:
                    action["retry"] = {"count": 3, "backoff": "exponential", "delay": "1m"}
            meta = {"_seq_no": current["seq_no"], "_primary_term": 1}
            return 200, {"_id": name, "_version": current["seq_no"] + 1, **meta, "policy": policy}
        expected = None if current is None else [str(current["seq_no"])]
        if r.query.get("if_seq_no") != expected or (
            current is not None and r.query.get("if_primary_term") != ["1"]
        ):
            return 409, {
                "error": {"type": "version_conflict_engine_exception", "reason": "conflict"}
            }
        self.seq_no += 1
        self.policies[name] = {"policy": json.loads(r.body)["policy"], "seq_no": self.seq_no}
        return 201, {"_id": name}

    def _dashboards(self, r: Recorded) -> tuple[int, Any]:
        if r.headers.get("osd-xsrf") != "true":
            return 400, {"statusCode": 400, "message": "Request must contain a osd-xsrf header."}
        if r.path == "/api/saved_objects/_bulk_get":
            found = []
            for wanted in json.loads(r.body):
                key = (wanted["type"], wanted["id"])
                found.append(self.saved_objects.get(key, {**wanted, "error": {"statusCode": 404}}))
            return 200, {"saved_objects": found}
        assert r.path == "/api/saved_objects/_import"
        assert r.query == {"overwrite": ["true"]}
        if self.import_errors is not None:
            return 200, {"success": False, "successCount": 0, "errors": self.import_errors}
        objects = [json.loads(line) for line in _multipart_file(r).splitlines() if line.strip()]
        for obj in objects:
            stored = copy.deepcopy(obj)
            stored["updated_at"] = "2025-01-01T00:00:00.000Z"
            if obj["type"] == "index-pattern":
                stored["attributes"]["fields"] = "[]"  # Dashboards fills these in later
            self.saved_objects[(obj["type"], obj["id"])] = stored
        return 200, {"success": True, "successCount": len(objects)}


def _multipart_file(r: Recorded) -> bytes:
    content_type = r.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + r.body
    )
    (part,) = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    assert str(part.get_filename()).endswith(".ndjson")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        recorded = Recorded(self.command, url.path, parse_qs(url.query), dict(self.headers), body)
        fake.requests.append(recorded)
        expected = "Basic " + base64.b64encode(f"{USER}:{fake.password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            status, reply = 401, {"error": "Unauthorized"}
        else:
            status, reply = fake.route(recorded)
        raw = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_PUT = do_POST = _handle


class Server(ThreadingHTTPServer):
    fake: FakeOpenSearch


@pytest.fixture
def fake() -> Iterator[FakeOpenSearch]:
    server = Server(("127.0.0.1", 0), Handler)
    server.fake = FakeOpenSearch(url=f"http://127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_settings(url: str, *, password: str = PASSWORD, **overrides: Any) -> SetupSettings:
    host = url.removeprefix("http://")
    values: dict[str, Any] = {
        "opensearch_uri": SecretStr(f"http://{USER}:{password}@{host}"),
        "opensearch_user": None,
        "opensearch_password": None,
        "opensearch_dashboards_url": SecretStr(url),  # no credentials: reuses OpenSearch's
        "opensearch_ca_file": None,
        "opensearch_assets_dir": ASSETS_DIR,
        "opensearch_wait_s": 120.0,
        **overrides,
    }
    return SetupSettings(_env_file=None, **values)


def asset(name: str) -> Any:
    return json.loads((ASSETS_DIR / name).read_text(encoding="utf-8"))


# --- end-to-end over HTTP ------------------------------------------------------------


async def test_first_run_creates_everything(fake: FakeOpenSearch) -> None:
    sleep = FakeSleep()
    outcomes = await setup_opensearch(make_settings(fake.url), sleep=sleep)

    assert outcomes == {
        "ingest_pipeline": "created",
        "ism_policy": "created",
        "index_template": "created",
        "saved_objects": "imported",
    }
    assert sleep.delays == []
    assert fake.pipelines[PIPELINE_ID] == asset("ingest-pipeline.json")
    assert fake.templates[TEMPLATE_NAME] == asset("index-template.json")
    assert fake.policies[POLICY_ID]["policy"] == asset("ism-policy.json")["policy"]
    writes = [(r.method, r.path) for r in fake.writes()]
    assert writes == [
        ("PUT", f"/_ingest/pipeline/{PIPELINE_ID}"),
        ("PUT", f"/_plugins/_ism/policies/{POLICY_ID}"),
        ("POST", "/_plugins/_ism/add/clickstream-events-*"),
        ("PUT", f"/_index_template/{TEMPLATE_NAME}"),
        ("POST", "/api/saved_objects/_import"),
    ]
    (imported,) = [r for r in fake.requests if r.path == "/api/saved_objects/_import"]
    assert imported.headers["osd-xsrf"] == "true"
    assert (
        _multipart_file(imported)
        == (ASSETS_DIR / "dashboards/clickstream-live.ndjson").read_bytes()
    )
    assert ("dashboard", "clickstream-live") in fake.saved_objects


async def test_second_run_writes_nothing(fake: FakeOpenSearch) -> None:
    settings = make_settings(fake.url)
    await setup_opensearch(settings, sleep=FakeSleep())
    fake.requests.clear()

    outcomes = await setup_opensearch(settings, sleep=FakeSleep())

    assert set(outcomes.values()) == {"unchanged"}
    assert fake.writes() == []


def _resaved_by_dashboards(value: Any) -> Any:
    """What Dashboards does to JSON-in-string attributes when an object is saved in its UI:
    same meaning, other formatting, default format params dropped."""
    if isinstance(value, dict):
        return {key: _resaved_by_dashboards(item) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("{"):
        parsed = json.loads(value)
        for spec in parsed.values() if isinstance(parsed, dict) else []:
            if isinstance(spec, dict) and spec.get("id") == "duration":
                spec.get("params", {}).pop("outputPrecision", None)  # the default, 2
        return json.dumps(parsed, sort_keys=True, indent=1)
    return value


async def test_objects_resaved_in_dashboards_are_not_reimported(fake: FakeOpenSearch) -> None:
    settings = make_settings(fake.url)
    await setup_opensearch(settings, sleep=FakeSleep())
    for stored in fake.saved_objects.values():
        stored["attributes"] = _resaved_by_dashboards(stored["attributes"])
    pattern = fake.saved_objects[("index-pattern", "clickstream-events")]["attributes"]
    assert pattern["fieldFormatMap"].startswith("{\n")  # really re-formatted
    fake.requests.clear()

    outcomes = await setup_opensearch(settings, sleep=FakeSleep())

    assert outcomes["saved_objects"] == "unchanged"
    assert fake.writes() == []


async def test_a_changed_saved_object_is_reimported(fake: FakeOpenSearch) -> None:
    settings = make_settings(fake.url)
    await setup_opensearch(settings, sleep=FakeSleep())
    funnel = fake.saved_objects[("visualization", "clickstream-funnel")]["attributes"]
    vis_state = json.loads(funnel["visState"])
    vis_state["params"]["spec"] = vis_state["params"]["spec"].replace("session_id", "user_id")
    funnel["visState"] = json.dumps(vis_state)
    fake.requests.clear()

    outcomes = await setup_opensearch(settings, sleep=FakeSleep())

    assert outcomes["saved_objects"] == "imported"


async def test_retention_change_updates_the_policy_with_its_seq_no(fake: FakeOpenSearch) -> None:
    await setup_opensearch(make_settings(fake.url), sleep=FakeSleep())
    fake.requests.clear()

    outcomes = await setup_opensearch(
        make_settings(fake.url, opensearch_retention_days=3), sleep=FakeSleep()
    )

    assert outcomes["ism_policy"] == "updated"
    assert outcomes["index_template"] == outcomes["ingest_pipeline"] == "unchanged"
    (put,) = [r for r in fake.writes() if r.method == "PUT"]
    assert put.query == {"if_seq_no": ["1"], "if_primary_term": ["1"]}
    hot = fake.policies[POLICY_ID]["policy"]["states"][0]
    assert hot["transitions"][0]["conditions"] == {"min_index_age": "3d"}
    assert [r.path for r in fake.writes() if r.method == "POST"] == [
        "/_plugins/_ism/change_policy/clickstream-events-*"
    ]


async def test_waits_for_the_cluster_with_capped_backoff(fake: FakeOpenSearch) -> None:
    fake.unavailable = 7
    sleep = FakeSleep()

    with capture_logs() as logs:
        await setup_opensearch(make_settings(fake.url), sleep=sleep)

    assert sleep.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    waiting = [entry for entry in logs if entry["event"] == "service_not_ready"]
    assert [entry["attempt"] for entry in waiting] == [1, 2, 3, 4, 5, 6, 7]
    assert waiting[0]["problem"] == "HTTP 503"


async def test_gives_up_when_the_wait_budget_is_spent(fake: FakeOpenSearch) -> None:
    fake.unavailable = 1_000
    sleep = FakeSleep()

    with pytest.raises(SetupError) as failure:
        await setup_opensearch(make_settings(fake.url, opensearch_wait_s=5), sleep=sleep)

    assert sum(sleep.delays) == 5
    assert str(failure.value.code) == (
        f"clickstream-setup: OpenSearch at {fake.url} not ready after 5 attempts (5s): HTTP 503"
    )
    assert fake.writes() == []


async def test_unreachable_cluster_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleep = FakeSleep()

    with pytest.raises(SetupError) as failure:
        await setup_opensearch(
            make_settings(f"http://127.0.0.1:{port}", opensearch_wait_s=1.5), sleep=sleep
        )

    assert sleep.delays == [0.5, 1.0]
    assert "not ready after 3 attempts" in str(failure.value.code)
    assert "ConnectError" in str(failure.value.code)


async def test_wrong_password_fails_at_once_with_a_clear_line(fake: FakeOpenSearch) -> None:
    sleep = FakeSleep()

    with capture_logs() as logs, pytest.raises(SetupError) as failure:
        await setup_opensearch(make_settings(fake.url, password="wrong-pw"), sleep=sleep)

    message = str(failure.value.code)
    assert message == (
        f"clickstream-setup: OpenSearch at {fake.url} rejected the credentials (HTTP 401): "
        "check OPENSEARCH_URI or OPENSEARCH_USER/OPENSEARCH_PASSWORD"
    )
    assert sleep.delays == []
    assert "wrong-pw" not in message
    assert "wrong-pw" not in repr(logs)


async def test_forbidden_names_the_request(fake: FakeOpenSearch) -> None:
    original = fake.route

    def forbid_templates(r: Recorded) -> tuple[int, Any]:
        if r.path.startswith("/_index_template"):
            return 403, {"error": {"type": "security_exception", "reason": "no permissions"}}
        return original(r)

    fake.route = forbid_templates  # type: ignore[method-assign]

    with pytest.raises(SetupError) as failure:
        await setup_opensearch(make_settings(fake.url), sleep=FakeSleep())

    assert f"denied GET /_index_template/{TEMPLATE_NAME} (HTTP 403)" in str(failure.value.code)


async def test_rejected_saved_objects_fail_with_the_reasons(fake: FakeOpenSearch) -> None:
    fake.import_errors = [
        {
            "id": "clickstream-funnel",
            "type": "visualization",
            "title": "Clickstream – conversion funnel",
            "error": {
                "type": "missing_references",
                "references": [{"type": "index-pattern", "id": "clickstream-events"}],
            },
        },
        {
            "id": "clickstream-live",
            "type": "dashboard",
            "error": {"type": "unknown", "message": "boom"},
        },
    ]

    with pytest.raises(SetupError) as failure:
        await setup_opensearch(make_settings(fake.url), sleep=FakeSleep())

    assert str(failure.value.code) == (
        "clickstream-setup: Dashboards rejected saved objects from "
        "dashboards/clickstream-live.ndjson: "
        "visualization/clickstream-funnel (missing_references index-pattern/clickstream-events); "
        "dashboard/clickstream-live (unknown boom)"
    )


async def test_without_a_dashboards_url_the_saved_objects_are_skipped(fake: FakeOpenSearch) -> None:
    outcomes = await setup_opensearch(
        make_settings(fake.url, opensearch_dashboards_url=None), sleep=FakeSleep()
    )

    assert "saved_objects" not in outcomes
    assert not any(r.path.startswith("/api/") for r in fake.requests)


def test_the_command_exits_non_zero_with_one_line(fake: FakeOpenSearch, tmp_path: Path) -> None:
    host = fake.url.removeprefix("http://")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENSEARCH_", "KAFKA_"))
    }
    env |= {
        "OPENSEARCH_URI": f"http://{USER}:bad-password@{host}",
        "OPENSEARCH_ASSETS_DIR": str(ASSETS_DIR),
        "LOG_FORMAT": "json",
    }
    script = "from clickstream_ops.setup.main import main; main()"

    done = subprocess.run(
        [sys.executable, "-c", script, "opensearch"],
        cwd=tmp_path,  # no .env there
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"clickstream-setup: OpenSearch at {fake.url} rejected")
    assert "bad-password" not in done.stderr + done.stdout


def _setup_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENSEARCH_", "KAFKA_", "LOG_"))
    }
    return env | {"OPENSEARCH_ASSETS_DIR": str(ASSETS_DIR), "LOG_FORMAT": "json", **extra}


def _run_setup(env: dict[str, str], cwd: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    script = "from clickstream_ops.setup.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", script, *targets],
        cwd=cwd,  # no .env there
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("target", ["opensearch", "all"])
def test_without_opensearch_uri_it_says_not_configured_and_stops(
    target: str, tmp_path: Path
) -> None:
    # KAFKA_BOOTSTRAP_SERVERS points nowhere: `all` must stop before trying Kafka.
    done = _run_setup(_setup_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9"), tmp_path, target)

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        "clickstream-setup: OpenSearch is not configured: OPENSEARCH_URI is not set "
        "(http(s)://[user:password@]host:port, e.g. http://localhost:9200 for a local node)"
    )
    assert "service_not_ready" not in done.stderr  # no retries against a guessed address
    assert "topics_ensured" not in done.stderr


async def test_without_opensearch_uri_nothing_is_attempted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    called: list[str] = []

    async def ensure_topics(*args: Any, **kwargs: Any) -> list[str]:
        called.append("kafka")
        return []

    monkeypatch.setattr(setup_main, "ensure_topics", ensure_topics)
    settings = make_settings("http://127.0.0.1:9", opensearch_uri=None)

    with pytest.raises(SetupError, match="OpenSearch is not configured"):
        await setup_main.run(settings, asyncio.Event(), targets=("kafka", "opensearch"))
    assert called == []
    await setup_main.run(settings, asyncio.Event(), targets=("kafka",))  # Kafka alone is fine
    assert called == ["kafka"]


def test_log_lines_keep_the_program_as_service(fake: FakeOpenSearch, tmp_path: Path) -> None:
    fake.unavailable = 1  # one "service_not_ready" line, then success
    host = fake.url.removeprefix("http://")
    env = _setup_env(
        OPENSEARCH_URI=f"http://{USER}:{PASSWORD}@{host}", OPENSEARCH_DASHBOARDS_URL=fake.url
    )

    done = _run_setup(env, tmp_path, "opensearch")

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    assert {"service_not_ready", "service_ready", "opensearch_ready"} <= set(events)
    assert {line["service"] for line in lines} == {"clickstream-setup"}
    assert events["service_not_ready"]["target"] == "OpenSearch"
    assert events["service_ready"]["target"] in {"OpenSearch", "OpenSearch Dashboards"}


def test_a_bad_flag_is_named_as_typed(tmp_path: Path) -> None:
    env = _setup_env(OPENSEARCH_URI="http://127.0.0.1:9")

    done = _run_setup(env, tmp_path, "kafka", "--partitions", "0", "--retention-days", "0")

    assert done.returncode != 0
    assert "--partitions 0" in done.stderr
    assert "--retention-days 0" in done.stderr
    assert "KAFKA_TOPIC_PARTITIONS" not in done.stderr


# --- kafka target ------------------------------------------------------------------


async def test_kafka_target_creates_events_and_dlq_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[dict[str, Any], dict[str, int], int]] = []

    async def ensure_topics(
        options: dict[str, Any], topics: Any, *, replication: int = 1
    ) -> list[str]:
        calls.append((options, dict(topics), replication))
        return list(topics)

    monkeypatch.setattr(setup_main, "ensure_topics", ensure_topics)
    settings = make_settings(
        "http://127.0.0.1:9", kafka_topic_partitions=12, kafka_topic_replication=3
    )

    await setup_main.run(settings, asyncio.Event(), targets=("kafka",))

    ((options, topics, replication),) = calls
    assert topics == {"clickstream-events": 12, "clickstream-events-dlq": 12}
    assert replication == 3
    assert options["bootstrap_servers"] == settings.kafka_bootstrap_servers.split(",")


def test_targets_and_flags_parse() -> None:
    args = setup_main.parse_args(
        ["kafka", "opensearch", "--partitions", "3", "--retention-days", "2"]
    )
    assert args.targets == ["kafka", "opensearch"]
    assert (args.partitions, args.replication, args.retention_days) == (3, None, 2)
    with pytest.raises(SystemExit):
        setup_main.parse_args(["elasticsearch"])


# --- pieces ------------------------------------------------------------------------


def test_service_uri_credentials_are_split_off() -> None:
    endpoint = parse_endpoint(
        "OpenSearch", "OPENSEARCH_URI", "https://u%40x:p%3Aw@os.example:24947/"
    )
    assert endpoint.url == "https://os.example:24947"
    assert endpoint.auth is not None
    assert "p:w" not in repr(endpoint)
    explicit = parse_endpoint(
        "OpenSearch", "OPENSEARCH_URI", "https://u:p@os.example:1", user="admin", password="pw2"
    )
    assert explicit.auth is not None
    assert explicit.auth._auth_header == "Basic " + base64.b64encode(b"admin:pw2").decode()
    assert parse_endpoint("OpenSearch", "X", "http://localhost:9200").auth is None


@pytest.mark.parametrize(
    "uri", ["localhost:9200", "ftp://h:1", "https://:pw@h:1", "https://h:port"]
)
def test_bad_service_uris_are_refused_without_echoing_them(uri: str) -> None:
    with pytest.raises(EndpointError) as failure:
        parse_endpoint("OpenSearch", "OPENSEARCH_URI", uri)
    assert "OPENSEARCH_URI" in str(failure.value)
    assert "pw" not in str(failure.value)


def test_settings_never_show_the_password() -> None:
    settings = make_settings("http://127.0.0.1:9200")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())


def test_backoff_is_capped_and_bounded() -> None:
    assert list(Backoff(initial_s=1, cap_s=4, budget_s=15).delays()) == [1, 2, 4, 4, 4]
    assert list(Backoff(initial_s=1, cap_s=4, budget_s=0.5).delays()) == [0.5]


def test_contains_ignores_server_additions_but_not_changes() -> None:
    desired = {"settings": {"index": {"number_of_shards": 1, "hidden": False}}, "list": [{"a": 1}]}
    server = {"settings": {"index": {"number_of_shards": "1", "hidden": "false", "uuid": "x"}}}
    assert contains(server | {"list": [{"a": 1, "retry": {}}]}, desired)
    assert not contains(server | {"list": [{"a": 2}]}, desired)
    assert not contains(server | {"list": [{"a": 1}, {"b": 2}]}, desired)
    assert not contains(None, desired)
