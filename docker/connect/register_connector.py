"""Register the OpenSearch sink on a Kafka Connect worker (the local Compose stack).

Reads connect/opensearch-sink.json (the file Terraform also reads), merges the
local connection settings from the environment and PUTs it to
``/connectors/<name>/config``: PUT creates or updates, so the set-up job can run
again. Standard library only, so that it runs in any Python image.

Environment: CONNECT_URL (http://connect:8083), CONNECTOR_FILE, OPENSEARCH_URI,
OPENSEARCH_USER / OPENSEARCH_PASSWORD (optional), CONNECT_DLQ_REPLICATION (1),
CONNECT_WAIT_S (180).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "connect" / "opensearch-sink.json"


def connector_config(settings: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """The shared settings plus this deployment's connection settings (same keys as Terraform)."""
    config = dict(settings)
    config["connection.url"] = env.get("OPENSEARCH_URI", "http://opensearch:9200")
    # Only with credentials: the local OpenSearch runs without its security plugin.
    if env.get("OPENSEARCH_USER") and env.get("OPENSEARCH_PASSWORD"):
        config["connection.username"] = env["OPENSEARCH_USER"]
        config["connection.password"] = env["OPENSEARCH_PASSWORD"]
    # A single local broker cannot hold the default three replicas of the DLQ topic.
    config["errors.deadletterqueue.topic.replication.factor"] = env.get(
        "CONNECT_DLQ_REPLICATION", "1"
    )
    return config


def _request(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - URL comes from the operator's environment
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def _wait_until(deadline: float, what: str, probe: Any) -> Any:
    """Call ``probe`` until it returns a truthy value; Connect takes a while to start."""
    while True:
        try:
            result = probe()
            if result:
                return result
        except (urllib.error.URLError, OSError, ValueError) as error:
            last = repr(error)
        else:
            last = "not yet"
        if time.monotonic() > deadline:
            raise SystemExit(f"register-connector: gave up waiting for {what}: {last}")
        time.sleep(2)


def main() -> int:
    env = os.environ
    base = env.get("CONNECT_URL", "http://connect:8083").rstrip("/")
    path = Path(env.get("CONNECTOR_FILE", str(DEFAULT_FILE)))
    settings = json.loads(path.read_text(encoding="utf-8"))
    name = settings["name"]
    config = connector_config(settings, env)
    deadline = time.monotonic() + float(env.get("CONNECT_WAIT_S", "180"))

    _wait_until(deadline, "the Connect REST API", lambda: _request("GET", f"{base}/") or True)
    _request("PUT", f"{base}/connectors/{name}/config", config)
    print(f"register-connector: {name} submitted to {base}", flush=True)

    def running() -> bool:
        status = _request("GET", f"{base}/connectors/{name}/status")
        states = [status["connector"]["state"]] + [t["state"] for t in status.get("tasks", [])]
        if "FAILED" in states:
            raise SystemExit(f"register-connector: {name} failed: {json.dumps(status)}")
        return bool(status.get("tasks")) and all(s == "RUNNING" for s in states)

    _wait_until(deadline, f"{name} to run", running)
    print(f"register-connector: {name} is RUNNING", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
