"""OpenSearch, one node from the integ-test zip on Maven Central (security plugin absent).

HTTP and transport ports are free-picked on 127.0.0.1; the node keeps its data,
its configuration copy and its logs in the work directory, runs with a small
heap, and never turns indices read-only because the disk is fuller than 90 %
(the disk watermarks are off). OpenSearch refuses to run as root, so a root
launcher runs it as an unprivileged account, as PostgreSQL is run.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.jvm import artifacts
from clickstream_devstack.servers.jvm.opensearch_modules import install_modules
from clickstream_devstack.servers.jvm.rest import RestError, call
from clickstream_devstack.servers.run_as import (
    RunAs,
    grant_traverse,
    hand_over,
    make_world_readable,
    server_account,
)

HEAP = "-Xms512m -Xmx512m"
SERVER_ACCOUNT = "clickstream-search"


class OpenSearchError(RestError):
    """The REST API answered with an error status."""


class OpenSearch(ChildServer):
    """A single-node cluster in ``work_dir``; its console log is ``<work_dir>/opensearch.log``."""

    name = "opensearch"

    def __init__(
        self,
        work_dir: Path,
        *,
        version: str | None = None,
        settings: Mapping[str, object] | None = None,
        start_timeout: float = 180.0,
    ) -> None:
        super().__init__(work_dir, start_timeout=start_timeout)
        self.version = version or artifacts.chosen_version("opensearch")
        self.settings = dict(settings or {})
        self._install: Path | None = None
        self._java: artifacts.Java | None = None
        self._account = server_account(SERVER_ACCOUNT)
        self.modules: list[str] = []

    @property
    def port_names(self) -> Sequence[str]:
        return ("http", "transport")

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, for OPENSEARCH_URI."""
        return f"http://{self.host}:{self.bound_port('http')}"

    @property
    def env(self) -> dict[str, str]:
        """OPENSEARCH_* variables of ``clickstream-setup opensearch`` (no user: security is off)."""
        return {"OPENSEARCH_URI": self.url}

    @property
    def install(self) -> Path:
        if self._install is None:
            home = artifacts.ensure("opensearch", self.version) / f"opensearch-{self.version}"
            if not (home / "bin" / "opensearch").exists():
                home = artifacts.install_dir("opensearch", self.version)
            self.modules = install_modules(home, self.version)
            if self._account is not None:
                make_world_readable(home)
            self._install = home
        return self._install

    def run_as(self) -> RunAs | None:
        return self._account

    def environment(self) -> dict[str, str]:
        java = artifacts.find_java()
        if self._java is None:
            self._java = java
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.work_dir),
            "OPENSEARCH_JAVA_HOME": str(java.home),
            "OPENSEARCH_PATH_CONF": str(self.work_dir / "config"),
            "OPENSEARCH_JAVA_OPTS": HEAP,
            "OPENSEARCH_TMPDIR": str(self.work_dir / "tmp"),
        }

    def prepare(self, ports: Mapping[str, int]) -> None:
        config = self.work_dir / "config"
        if not config.exists():
            shutil.copytree(self.install / "config", config)
            _point_jvm_files_here(config / "jvm.options", self.work_dir)
        for folder in ("data", "logs", "tmp"):
            (self.work_dir / folder).mkdir(exist_ok=True)
        if self._account is not None:
            grant_traverse(self.work_dir)
            hand_over(self.work_dir, self._account)

    def argv(self, ports: Mapping[str, int]) -> list[str]:
        values: dict[str, object] = {
            "cluster.name": "clickstream-test",
            "node.name": "node-1",
            "network.host": self.host,
            "http.port": ports["http"],
            "transport.port": ports["transport"],
            "discovery.type": "single-node",
            "path.data": self.work_dir / "data",
            "path.logs": self.work_dir / "logs",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        values.update(self.settings)
        return [
            str(self.install / "bin" / "opensearch"),
            *(f"-E{k}={v}" for k, v in values.items()),
        ]

    def answers(self, ports: Mapping[str, int]) -> bool:
        url = (
            f"http://{self.host}:{ports['http']}/_cluster/health?wait_for_status=yellow&timeout=1s"
        )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                health = json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return health.get("status") in ("green", "yellow")

    def request(self, method: str, path: str, body: object | None = None) -> Any:
        """A REST call; the decoded JSON answer."""
        return call(self.url + path, method, body, OpenSearchError, "OpenSearch")


def _point_jvm_files_here(jvm_options: Path, work_dir: Path) -> None:
    """The GC log, heap dumps and crash files go to the work directory.

    ``bin/opensearch`` runs from the installation, whose relative ``logs/`` and
    ``data`` the server account may not write (and must not share between nodes).
    """
    text = jvm_options.read_text()
    text = text.replace("file=logs/", f"file={work_dir}/logs/")
    text = text.replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={work_dir}/logs/")
    text = text.replace("-XX:HeapDumpPath=data", f"-XX:HeapDumpPath={work_dir}/data")
    jvm_options.write_text(text)
