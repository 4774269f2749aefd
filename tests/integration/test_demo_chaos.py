"""``make demo DEMO_ARGS="--chaos"`` at a small size: faults during live traffic, then
clickstream-verify's verdict must be exact (nothing lost, nothing counted twice)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psutil
import pytest

from clickstream_devstack.services import script_path

pytestmark = [pytest.mark.faults, pytest.mark.timeout(480)]


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{pattern!r} not in the output:\n{text}"
    return int(found.group(1).replace(",", ""))


def test_chaos_demo_ends_with_an_exact_verdict(tmp_path: Path) -> None:
    work_dir = tmp_path / "demo"
    result = subprocess.run(
        [
            str(script_path("clickstream-demo")),
            "--chaos",
            "--duration", "15",
            "--rate", "200",
            "--backfill", "0",
            "--dir", str(work_dir),
            "--keep",
        ],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
        cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout

    assert result.returncode == 0, out + result.stderr
    # Every fault happened, while the traffic ran.
    assert "2 replicas SIGKILLed, 1 frozen, PostgreSQL restarted 1×" in out
    for step in ("SIGKILL aggregator-1", "SIGSTOP aggregator-2", "SIGCONT aggregator-2",
                 "SIGKILL aggregator-3", "PostgreSQL restarted", "malformed messages published",
                 "late events", "duplicates (same event_id"):  # fmt: skip
        assert step in out, step
    # The verdict, recomputed from the topic by clickstream-verify.
    assert "0 lost, 0 counted twice" in out
    messages = _number(r"^messages on the topic \(committed\)\s+([\d,]+)", out)
    applied = _number(r"^\s+events applied\s+([\d,]+)", out)
    duplicates = _number(r"^\s+duplicates\s+([\d,]+)", out)
    dead = _number(r"^\s+dead-lettered\s+([\d,]+)", out)
    assert messages == applied + duplicates + dead
    assert duplicates >= 20  # two rounds of injected duplicates
    assert dead == _number(r"(\d+) malformed messages published", out)
    assert _number(r"^dead letters\s+([\d,]+)\s+rows", out) == dead
    assert _number(r"rows; ([\d,]+) copies on the dead-letter topic", out) == dead
    # --keep: the logs are there, and the first line said where.
    assert f"logs in {work_dir}" in out
    assert (work_dir / "logs" / "aggregator-1.1.log").exists()
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(work_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
