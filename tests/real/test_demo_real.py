"""``clickstream-demo --real``: the demo on Apache Kafka, then what OpenSearch holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clickstream_devstack.servers.jvm.opensearch import OpenSearch

pytestmark = [pytest.mark.integration, pytest.mark.real]


def test_the_real_demo_indexes_every_event_once_and_agrees_with_postgresql(
    opensearch: OpenSearch,  # skips the test, loudly, where there is no Java
    tmp_path: Path,
) -> None:
    demo = Path(sys.executable).parent / "clickstream-demo"
    result = subprocess.run(
        [str(demo), "--real", "--duration", "6", "--rate", "100", "--backfill", "600",
         "--dir", str(tmp_path / "demo")],
        env={**os.environ, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    documents = re.search(r"documents \(one per event_id\)\s*│\s*([\d,]+) of ([\d,]+) ids", out)
    applied = re.search(r"([\d,]+) events applied\s*│", out)
    revenue = re.search(r"revenue \(purchases\)\s*│\s*\$([\d,.]+)\s*│\s*\$([\d,.]+)", out)
    assert documents is not None, out[-3000:]
    assert applied is not None, out[-3000:]
    assert revenue is not None, out[-3000:]
    # One document per event id, as many as PostgreSQL applied; the same revenue.
    assert documents[1] == documents[2] == applied[1]
    assert int(applied[1].replace(",", "")) >= 600
    assert revenue[1] == revenue[2]
    assert "OpenSearch indices: clickstream-events-" in out
