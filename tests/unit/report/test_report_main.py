"""clickstream-report's exit status agrees with its --help: 2 when it cannot report."""

from __future__ import annotations

from pathlib import Path

import pytest

from clickstream_aggregator.report.main import main, parser


def test_help_promises_2_and_invalid_settings_exit_2_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "Exit status 2 when the report cannot be produced" in parser().format_help()
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("POSTGRES_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    [said] = capsys.readouterr().err.splitlines()
    assert said.startswith("clickstream-report: configuration error: POSTGRES_PORT=not-a-port")
