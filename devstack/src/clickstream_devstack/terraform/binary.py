"""The terraform CLI for the checks: the one named or on PATH, else one built with Go.

No Terraform download site is reachable here; the Go module proxy is, and it serves
github.com/hashicorp/terraform. v1.5.7 is the last release under the MPL-2.0 (later
ones are under the BUSL) and within terraform/versions.tf's required_version; its
go.mod has no replace directives, so a plain ``go install ...@v1.5.7`` builds it.
The result is kept in ``.cache/terraform/bin/``, so Go runs once per cache.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger()

#: The one place the built version is kept.
TERRAFORM_VERSION = "1.5.7"
TERRAFORM_MODULE = "github.com/hashicorp/terraform"
#: A terraform binary to use instead of PATH's (or of a build).
BINARY_VARIABLE = "CLICKSTREAM_TERRAFORM"
CACHE_VARIABLE = "CLICKSTREAM_TERRAFORM_CACHE"
#: clickstream_devstack/terraform/binary.py -> the repository root.
REPO = Path(__file__).resolve().parents[4]


class TerraformUnavailableError(RuntimeError):
    """Neither a terraform binary nor Go to build one is here; the message says why."""


def cache_dir() -> Path:
    """``$CLICKSTREAM_TERRAFORM_CACHE`` or ``<repo>/.cache/terraform`` (git-ignored)."""
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured) if configured else REPO / ".cache" / "terraform"


def built_path() -> Path:
    return cache_dir() / "bin" / f"terraform-{TERRAFORM_VERSION}"


def find_terraform(*, build: bool = True) -> Path:
    """``$CLICKSTREAM_TERRAFORM``, else ``terraform`` on PATH, else the cached build
    (made now with ``go install`` when ``build`` is true)."""
    configured = os.environ.get(BINARY_VARIABLE)
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise TerraformUnavailableError(f"{BINARY_VARIABLE}={configured} is not executable")
        return path
    on_path = shutil.which("terraform")
    if on_path:
        return Path(on_path)
    target = built_path()
    if target.exists():
        return target
    if not build:
        raise TerraformUnavailableError(f"no terraform on PATH and none built in {target}")
    return _build(target)


def _build(target: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise TerraformUnavailableError(
            "no terraform on PATH and no Go to build it "
            f"(`go install {TERRAFORM_MODULE}@v{TERRAFORM_VERSION}`)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time, even from parallel test sessions; the binary appears by
    # rename only when complete, so its existence is the stamp.
    with (target.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        log.info("terraform_building", version=TERRAFORM_VERSION, target=str(target))
        with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
            env = {**os.environ, "GOBIN": gobin}
            result = subprocess.run(  # noqa: S603 - our own argv
                [go, "install", f"{TERRAFORM_MODULE}@v{TERRAFORM_VERSION}"],
                capture_output=True,
                text=True,
                check=False,
                timeout=1800,
                env=env,
                cwd=gobin,
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip().splitlines()
                raise RuntimeError(
                    f"go install {TERRAFORM_MODULE}@v{TERRAFORM_VERSION} failed:\n"
                    + "\n".join(output[-30:])
                )
            (Path(gobin) / "terraform").rename(target)
        log.info("terraform_built", version=TERRAFORM_VERSION, target=str(target))
    return target
