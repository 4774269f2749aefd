"""The checked-in OpenSearch assets (``opensearch/`` at the repository root).

The files are the request bodies exactly as an operator would send them with
curl; this module finds them, reads them and applies the one setting that is
not fixed in a file: the retention period.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clickstream_ops.setup.client import SetupError

PIPELINE_ID: Final = "clickstream-events-ingest"
TEMPLATE_NAME: Final = "clickstream-events"
POLICY_ID: Final = "clickstream-events-retention"

PIPELINE_FILE: Final = "ingest-pipeline.json"
TEMPLATE_FILE: Final = "index-template.json"
POLICY_FILE: Final = "ism-policy.json"
SAVED_OBJECTS_FILE: Final = "dashboards/clickstream-live.ndjson"


@dataclass(frozen=True)
class Assets:
    pipeline: dict[str, Any]
    template: dict[str, Any]
    policy: dict[str, Any]
    #: The NDJSON bytes as imported, and the parsed objects (for the up-to-date check).
    saved_objects_ndjson: bytes
    saved_objects: list[dict[str, Any]]


def find_assets_dir(configured: Path | None) -> Path:
    """OPENSEARCH_ASSETS_DIR, else ./opensearch, else the repository holding this package."""
    if configured is not None:
        if not (configured / TEMPLATE_FILE).is_file():
            raise SetupError(f"OPENSEARCH_ASSETS_DIR={configured} holds no {TEMPLATE_FILE}")
        return configured
    candidates = [Path.cwd() / "opensearch"]
    # Editable installs and a source checkout in a container keep the repo layout.
    candidates += [parent / "opensearch" for parent in Path(__file__).resolve().parents]
    for candidate in candidates:
        if (candidate / TEMPLATE_FILE).is_file():
            return candidate
    raise SetupError(
        "OpenSearch assets not found: set OPENSEARCH_ASSETS_DIR to the repository's opensearch/"
    )


def load_assets(directory: Path, *, retention_days: int) -> Assets:
    ndjson = _read(directory / SAVED_OBJECTS_FILE)
    try:
        saved_objects = [json.loads(line) for line in ndjson.splitlines() if line.strip()]
    except ValueError as exc:
        raise SetupError(f"{SAVED_OBJECTS_FILE} is not valid NDJSON: {exc}") from None
    return Assets(
        pipeline=_read_json(directory / PIPELINE_FILE),
        template=_read_json(directory / TEMPLATE_FILE),
        policy=with_retention(_read_json(directory / POLICY_FILE), retention_days),
        saved_objects_ndjson=ndjson,
        saved_objects=saved_objects,
    )


def with_retention(policy: dict[str, Any], days: int) -> dict[str, Any]:
    """The ISM policy with every transition into the delete state set to ``days``."""
    result = copy.deepcopy(policy)
    for state in result["policy"]["states"]:
        for transition in state.get("transitions", []):
            if transition.get("state_name") == "delete":
                transition["conditions"] = {"min_index_age": f"{days}d"}
    return result


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc.strerror}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(_read(path))
    except ValueError as exc:
        raise SetupError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SetupError(f"{path} must hold a JSON object")
    return value
