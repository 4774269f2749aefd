"""``clickstream-env``: write ``.env`` from ``terraform output -json``.

``render_env`` is pure (Terraform's output document in, ``.env`` lines out) so the
contract tests can run it against a recorded document; ``main`` only adds the
I/O: running Terraform, refusing to clobber an existing file, writing it 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

#: ``.env`` variable → Terraform output (terraform/outputs.tf). Order is file order.
KAFKA_OUTPUTS: Final = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka_service_uri",
    "KAFKA_TOPIC": "kafka_topic",
    "KAFKA_DLQ_TOPIC": "kafka_dlq_topic",
    "KAFKA_GROUP_ID": "kafka_group_id",
    "KAFKA_TOPIC_PARTITIONS": "kafka_topic_partitions",
    "KAFKA_SSL_CAFILE": "kafka_ca_file",
    "KAFKA_SSL_CERTFILE": "kafka_cert_file",
    "KAFKA_SSL_KEYFILE": "kafka_key_file",
}
POSTGRES_OUTPUTS: Final = {
    "POSTGRES_HOST": "postgres_host",
    "POSTGRES_PORT": "postgres_port",
    "POSTGRES_DATABASE": "postgres_database",
    "POSTGRES_USER": "postgres_user",
    "POSTGRES_PASSWORD": "postgres_password",
    "POSTGRES_SSLROOTCERT": "postgres_ca_file",
}
OPENSEARCH_OUTPUTS: Final = {
    "OPENSEARCH_URI": "opensearch_uri",
    "OPENSEARCH_DASHBOARDS_URL": "opensearch_dashboard_url",
    "OPENSEARCH_USER": "opensearch_user",
    "OPENSEARCH_PASSWORD": "opensearch_password",
    "OPENSEARCH_RETENTION_DAYS": "opensearch_retention_days",
}
REQUIRED_OUTPUTS: Final = frozenset(
    {*KAFKA_OUTPUTS.values(), *POSTGRES_OUTPUTS.values(), *OPENSEARCH_OUTPUTS.values()}
)

# Values outside this set are single-quoted: both Compose's env_file parser and
# python-dotenv take single-quoted values literally (no $-interpolation, no #-comments).
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:@,+=-]*")

HEADER: Final = (
    "# Written by clickstream-env from `terraform output -json`. It holds passwords:",
    "# keep it out of git (it is in .gitignore) and regenerate it with `make env FORCE=1`.",
)


class EnvFileError(Exception):
    """Terraform's outputs cannot be turned into a .env file; the message says why."""


def output_values(document: Mapping[str, Any]) -> dict[str, Any]:
    """``{"name": {"value": v, "type": ..., "sensitive": ...}}`` → ``{"name": v}``."""
    values: dict[str, Any] = {}
    for name, entry in document.items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise EnvFileError(f"output {name!r} is not in `terraform output -json` form")
        values[name] = entry["value"]
    return values


def _format_value(name: str, value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise EnvFileError(f"output for {name} is a {type(value).__name__}, expected a scalar")
    if _BARE_VALUE.fullmatch(text):
        return text
    if "'" in text or "\n" in text:
        raise EnvFileError(f"{name} contains a quote or a newline and cannot be written safely")
    return f"'{text}'"


def _section(title: str, mapping: Mapping[str, str], values: Mapping[str, Any]) -> list[str]:
    lines = ["", f"# {title}"]
    lines += [f"{env}={_format_value(env, values[out])}" for env, out in mapping.items()]
    return lines


def render_env(
    document: Mapping[str, Any], *, uid: int | None = None, gid: int | None = None
) -> list[str]:
    """Turn ``terraform output -json`` into the lines of ``.env`` (without newlines).

    ``uid``/``gid`` become CLICKSTREAM_UID/GID, which docker-compose.yml runs the
    containers as, so that they can read the 0600 key files Terraform wrote.
    """
    values = output_values(document)
    missing = sorted(REQUIRED_OUTPUTS - values.keys())
    if missing:
        raise EnvFileError(
            "terraform outputs missing: " + ", ".join(missing) + " (run `terraform apply` first)"
        )
    lines = list(HEADER)
    lines += _section("Kafka (client-certificate TLS)", KAFKA_OUTPUTS, values)
    # Aiven brokers support idempotent producers and the service user may use them.
    lines.append("KAFKA_ENABLE_IDEMPOTENCE=true")
    lines += _section("PostgreSQL (the aggregator's own user)", POSTGRES_OUTPUTS, values)
    # verify-full: the project CA signs the server certificate for its host name.
    lines.append("POSTGRES_SSLMODE=verify-full")
    lines += _section("OpenSearch (clickstream-setup opensearch)", OPENSEARCH_OUTPUTS, values)
    if uid is not None and gid is not None:
        lines += ["", "# docker compose runs the services as you (see DEPLOY.md)"]
        lines += [f"CLICKSTREAM_UID={uid}", f"CLICKSTREAM_GID={gid}"]
    return lines


def read_terraform_outputs(terraform_dir: Path) -> dict[str, Any]:
    """Run ``terraform output -json`` in ``terraform_dir`` and parse it."""
    terraform = shutil.which("terraform")
    if terraform is None:
        raise EnvFileError("terraform is not on PATH; install it or pass --from-json FILE")
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [terraform, f"-chdir={terraform_dir}", "output", "-json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise EnvFileError(f"`terraform output -json` failed: {result.stderr.strip()}")
    return _parse(result.stdout, source="terraform output -json")


def _parse(text: str, *, source: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise EnvFileError(f"{source} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise EnvFileError(f"{source} is not a JSON object of outputs")
    if not document:
        raise EnvFileError(f"{source} has no outputs (run `terraform apply` first)")
    return document


def write_env(path: Path, lines: Sequence[str], *, force: bool) -> None:
    """Write ``lines`` to ``path`` with mode 0600; without ``force`` never replace a file."""
    # O_EXCL makes "refuse to overwrite" atomic instead of check-then-write.
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise EnvFileError(
            f"{path} already exists; pass --force (or `make env FORCE=1`) to replace it"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # an existing file keeps its mode otherwise
        file.write("\n".join(lines) + "\n")


def _missing_files(lines: Sequence[str], base: Path) -> list[str]:
    names = ("KAFKA_SSL_CAFILE=", "KAFKA_SSL_CERTFILE=", "KAFKA_SSL_KEYFILE=")
    paths = [line.split("=", 1)[1].strip("'") for line in lines if line.startswith(names)]
    return [p for p in paths if not (base / p).is_file()]


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-env", description="Write .env from `terraform output -json`."
    )
    parser.add_argument("--terraform-dir", type=Path, default=Path("terraform"))
    parser.add_argument(
        "--from-json", type=Path, metavar="FILE", help="read a saved `terraform output -json`"
    )
    parser.add_argument("--output", type=Path, default=Path(".env"))
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        if args.from_json is not None:
            document = _parse(
                args.from_json.read_text(encoding="utf-8"), source=str(args.from_json)
            )
        else:
            document = read_terraform_outputs(args.terraform_dir)
        getuid, getgid = getattr(os, "getuid", None), getattr(os, "getgid", None)
        lines = render_env(
            document,
            uid=getuid() if getuid else None,
            gid=getgid() if getgid else None,
        )
        write_env(args.output, lines, force=args.force)
    except (EnvFileError, OSError) as error:
        print(f"clickstream-env: {error}", file=sys.stderr)
        return 1
    print(f"clickstream-env: wrote {args.output}")
    for path in _missing_files(lines, args.output.parent):
        print(f"clickstream-env: warning: {path} does not exist yet", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
