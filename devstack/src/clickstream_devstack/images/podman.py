"""The podman command line, with the options that make it work on these machines.

The machines run inside a container themselves: podman's defaults (crun, systemd
cgroups, ulimits copied from a host limit the sandbox may not grant) fail there,
while ``--runtime runc --cgroup-manager cgroupfs`` and explicit ``nofile``/``nproc``
limits work. Every call goes through :class:`Podman` so that no caller forgets them.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

#: Ceilings for the explicit limits. Without ``--ulimit`` podman asks for
#: nofile=1048576, above the sandbox's hard limit (20000 here), which runc may not
#: raise (EPERM). nproc counts the threads of uid 10001 in all containers; the
#: services run a few dozen, and on these machines runc was refused 65536 but
#: granted 32768, so 4096 leaves room both ways.
_MAX_NOFILE = 1 << 20
_MAX_NPROC = 4096


class PodmanUnavailableError(RuntimeError):
    """Podman cannot build or run containers here; the message says why."""


class PodmanCommandError(RuntimeError):
    """A podman command failed; the message has its arguments and its output."""


def _limit(kind: int, ceiling: int) -> int:
    _soft, hard = resource.getrlimit(kind)
    return ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)


def ulimit_options() -> list[str]:
    """``--ulimit`` for ``nofile`` and ``nproc``: this process's hard limits, capped."""
    nofile = _limit(resource.RLIMIT_NOFILE, _MAX_NOFILE)
    nproc = _limit(resource.RLIMIT_NPROC, _MAX_NPROC)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


@dataclass(frozen=True)
class Podman:
    """One podman executable and the global options it always gets."""

    executable: str

    @classmethod
    def find(cls) -> Podman:
        """The ``podman`` on PATH, checked to answer ``podman info``."""
        executable = shutil.which("podman")
        if executable is None:
            raise PodmanUnavailableError(
                "podman is not installed (Debian: apt-get install podman debootstrap runc "
                "slirp4netns fuse-overlayfs uidmap; .ci/run does this)"
            )
        podman = cls(executable)
        if shutil.which("runc") is None:
            raise PodmanUnavailableError("runc is not installed (apt-get install runc)")
        try:
            podman.run("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60)
        except (PodmanCommandError, subprocess.TimeoutExpired) as error:
            raise PodmanUnavailableError(f"podman cannot run here: {error}") from error
        return podman

    def argv(self, *args: str) -> list[str]:
        return [self.executable, "--runtime", "runc", "--cgroup-manager", "cgroupfs", *args]

    def run(
        self, *args: str, timeout: float, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one podman command to completion; ``check`` raises on a non-zero exit."""
        result = subprocess.run(  # noqa: S603 - argv is built here, never by a shell
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise PodmanCommandError(_describe(args, result))
        return result

    def image_exists(self, name: str) -> bool:
        return self.run("image", "exists", name, timeout=60, check=False).returncode == 0

    def version(self) -> str:
        return self.run("version", "--format", "{{.Client.Version}}", timeout=60).stdout.strip()


def _describe(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    tail = "\n".join(output.splitlines()[-30:])
    return f"podman {' '.join(args)} exited {result.returncode}:\n{tail}"
