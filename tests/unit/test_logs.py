"""``clickstream_runtime.logs.configure``: one JSON event per line off a terminal, no secrets."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from clickstream_runtime import logs
from clickstream_runtime.settings import PostgresSettings

SECRET = "s3cr3t-Pa55-xyz"
MASK = "**********"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``configure`` changes process-wide state: put it back for the other tests."""
    config = structlog.get_config()
    context = structlog.contextvars.get_contextvars()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**context)
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_lines_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert not sys.stderr.isatty()  # pytest's capture is a plain stream
    logs.configure("test-service")  # fmt="auto"
    log = structlog.get_logger()
    log.info("batch_committed", partition=3, offset=42, rows=7)
    log.warning("postgres_waiting", attempt=2)

    captured = capsys.readouterr()
    assert captured.out == ""
    first, second = _lines(captured.err)
    assert first["event"] == "batch_committed"
    assert (first["partition"], first["offset"], first["rows"]) == (3, 42, 7)
    assert first["level"] == "info"
    assert first["service"] == "test-service"
    assert first["timestamp"].endswith("Z")  # ISO 8601 in UTC
    assert second["event"] == "postgres_waiting"
    assert (second["level"], second["attempt"]) == ("warning", 2)


def test_console_lines_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logs.configure("test-service")
    structlog.get_logger().info("batch_committed", rows=7)

    line = terminal.getvalue()
    assert "batch_committed" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_level_filters_lower_events(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("test-service", level="warning", fmt="json")
    log = structlog.get_logger()
    log.info("not_shown")
    log.warning("shown")
    assert [line["event"] for line in _lines(capsys.readouterr().err)] == ["shown"]


def test_exceptions_are_structured_json(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("test-service", fmt="json")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("batch_failed")
    (line,) = _lines(capsys.readouterr().err)
    assert line["event"] == "batch_failed"
    assert line["exception"][0]["exc_type"] == "ValueError"


@pytest.mark.parametrize("key", ["password", "postgres_password", "secret", "token", "api_token"])
def test_secret_keys_are_redacted_however_they_are_bound(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("test-service", fmt="json")
    log = structlog.get_logger()
    log.info("as_argument", **{key: SECRET})
    log.bind(**{key: SECRET}).info("bound")
    structlog.contextvars.bind_contextvars(**{key: SECRET})
    log.info("from_context")

    err = capsys.readouterr().err
    assert SECRET not in err
    lines = _lines(err)
    assert [line["event"] for line in lines] == ["as_argument", "bound", "from_context"]
    assert all(line[key] == MASK for line in lines)


def test_secret_str_values_and_settings_never_show_the_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = PostgresSettings(_env_file=None, postgres_password=SECRET)
    logs.configure("test-service", fmt="json")
    log = structlog.get_logger()
    # Keys that are not on the redaction list: only SecretStr's own masking protects these.
    log.info("secret_value", credential=SecretStr(SECRET))
    log.info("settings_object", settings=settings)
    log.info("settings_dump", settings=settings.model_dump())

    err = capsys.readouterr().err
    assert SECRET not in err
    assert [line["event"] for line in _lines(err)] == [
        "secret_value",
        "settings_object",
        "settings_dump",
    ]
    assert MASK in err
