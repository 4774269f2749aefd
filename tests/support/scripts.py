"""Run a service's console script to its end, as an operator would from a shell."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from clickstream_devstack.services import script_path


def run_script(
    name: str, *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``name`` (e.g. ``clickstream-aggregator``) with ``args`` in ``cwd`` (give it a
    directory without a ``.env`` to pick up); output captured as text, never checked
    here: the exit status is the test's to assert."""
    return subprocess.run(
        [str(script_path(name)), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
