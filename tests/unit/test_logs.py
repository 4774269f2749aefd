"""``clickstream_runtime.logs.configure``: one JSON event per line off a terminal, no secrets.

Library lines (stdlib logging) are JSON too, and a repeated library warning
collapses into one line per interval with a count.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from clickstream_runtime import logs
from clickstream_runtime.log_repeats import CollapsingHandler, RepeatCollapser
from clickstream_runtime.settings import PostgresSettings
from support.logging_state import restored_logging

SECRET = "s3cr3t-Pa55-xyz"
MASK = "**********"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``configure`` changes process-wide state: put it back for the other tests."""
    with restored_logging():
        yield


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


def test_library_lines_are_json_with_their_logger(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("test-service", fmt="json")
    library = logging.getLogger("aiokafka.client")
    library.error('Unable connect to "%s:%s": %s', "localhost", 9092, "connection refused")
    library.info("below the library floor: not shown")
    try:
        raise ConnectionResetError("reset by peer")
    except ConnectionResetError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")

    err = capsys.readouterr().err
    first, second = _lines(err)  # every line parses as JSON
    assert first["event"] == 'Unable connect to "localhost:9092": connection refused'
    assert (first["logger"], first["level"], first["service"]) == (
        "aiokafka.client",
        "error",
        "test-service",
    )
    assert first["timestamp"].endswith("Z")
    assert second["logger"] == "asyncio"
    assert second["exception"][0]["exc_type"] == "ConnectionResetError"


def test_warnings_and_uncaught_exceptions_are_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a service: the hooks are Python's defaults (pytest installs its own).
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    logs.configure("test-service", fmt="json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("certificate not verified", UserWarning, stacklevel=1)
    try:
        raise RuntimeError("nobody caught me")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)

    warning, uncaught = _lines(capsys.readouterr().err)
    assert warning["logger"] == "py.warnings"
    assert "certificate not verified" in warning["event"]
    assert uncaught["event"] == "uncaught_exception"
    assert uncaught["exception"][0]["exc_value"] == "nobody caught me"


def test_a_server_with_its_own_plain_handler_is_routed_to_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = logging.getLogger("uvicorn.error")
    server.addHandler(logging.StreamHandler(sys.stderr))
    server.propagate = False
    try:
        logs.configure("test-service", fmt="json")
        server.warning("Invalid HTTP request received.")
        (line,) = _lines(capsys.readouterr().err)
        assert (line["logger"], line["event"]) == (
            "uvicorn.error",
            "Invalid HTTP request received.",
        )
    finally:
        server.handlers.clear()
        server.propagate = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _collapsing_handler(clock: FakeClock, interval_s: float) -> CollapsingHandler:
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, CollapsingHandler)]
    handler.collapser = RepeatCollapser(interval_s, clock)
    return handler


def test_forty_errors_a_second_become_one_line_per_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("test-service", fmt="json")
    clock = FakeClock()
    handler = _collapsing_handler(clock, 10.0)
    library = logging.getLogger("aiokafka.conn")

    def broker_down(start: float, seconds: int) -> None:
        for i in range(40 * seconds):
            clock.now = start + i / 40
            library.error("Unable connect to %s: [Errno %d] refused", "localhost:9092", 100 + i)

    broker_down(0.0, 10)  # 400 errors
    clock.now = 10.0
    handler.flush_summaries()
    broker_down(10.0, 10)  # 400 more, still down
    clock.now = 20.0
    handler.flush_summaries()
    clock.now = 30.0  # quiet for an interval: forgotten
    handler.flush_summaries()
    broker_down(30.0, 1)
    logging.getLogger("aiokafka.consumer").error("another template, its own key")

    lines = _lines(capsys.readouterr().err)
    assert [(line["event"], line.get("repeated")) for line in lines] == [
        ("Unable connect to localhost:9092: [Errno 100] refused", None),
        ("Unable connect to localhost:9092: [Errno 499] refused", 399),
        ("Unable connect to localhost:9092: [Errno 499] refused", 400),
        ("Unable connect to localhost:9092: [Errno 100] refused", None),
        ("another template, its own key", None),
    ]
    assert lines[1]["repeated_window_s"] == 10.0
    assert all(line["logger"].startswith("aiokafka") for line in lines)


def test_pending_repeats_are_printed_on_time_and_at_close(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("test-service", fmt="json", repeat_interval_s=0.2)
    library = logging.getLogger("asyncpg.pool")
    for _ in range(50):
        library.warning("connection lost")

    # The handler's own thread prints the summary, although nothing else is logged.
    # (Usually one; two if this thread was held up mid-loop for a whole interval.)
    deadline = time.monotonic() + 5
    seen: list[dict[str, Any]] = []
    while sum(line.get("repeated") or 0 for line in seen) < 49:
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
        seen += _lines(capsys.readouterr().err)
    repeated = [line.get("repeated") for line in seen]
    assert repeated[0] is None  # the first one printed as it came
    assert all(repeated[1:])  # then only summaries
    assert sum(repeated[1:]) == 49

    library.warning("connection lost")
    library.warning("connection lost")
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, CollapsingHandler)]
    handler.close()  # what logging.shutdown() does at exit
    counts = [line.get("repeated") for line in _lines(capsys.readouterr().err)]
    assert sum(c or 0 for c in counts) + counts.count(None) == 2


def test_hooks_installed_by_someone_else_are_kept() -> None:
    def theirs(*_: object) -> None:
        return None

    sys.excepthook = theirs
    logs.configure("test-service", fmt="json")
    assert sys.excepthook is theirs


def test_only_the_expected_aiokafka_errors_become_info() -> None:
    from aiokafka.errors import (
        GroupAuthorizationFailedError,
        GroupCoordinatorNotAvailableError,
        UnknownError,
    )

    from clickstream_runtime.logs import ExpectedLibraryErrors

    def record(name: str, msg: str, arg: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (arg,), None)

    shown, hidden = ExpectedLibraryErrors(show_info=True), ExpectedLibraryErrors(show_info=False)
    coordinator = "aiokafka.consumer.group_coordinator"
    retried = record(
        coordinator, "Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError()
    )
    assert shown.filter(retried)
    assert retried.levelname == "INFO"
    assert not hidden.filter(
        record(
            coordinator, "Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError()
        )
    )
    init = record(
        "aiokafka.producer.sender",
        "Unexpected error during InitProducerIdRequest: %s",
        UnknownError,
    )
    assert shown.filter(init)
    assert init.levelno == logging.INFO
    # Not retriable, another library, another message: still errors.
    for other in (
        record(
            coordinator, "Group Coordinator Request failed: %s", GroupAuthorizationFailedError()
        ),
        record(
            "asyncpg", "Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError()
        ),
        record(
            "aiokafka.producer.sender",
            "Unexpected error during InitProducerIdRequest: %s",
            KeyError,
        ),
    ):
        assert hidden.filter(other)
        assert other.levelno == logging.ERROR
