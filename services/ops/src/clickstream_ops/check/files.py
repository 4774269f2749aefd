"""Certificate and key files: present, readable, PEM, and keys private.

The design document's first troubleshooting step, ``ls -la`` and ``chmod 600
*.key``, as a check: a private key readable by group or others is a leak
waiting to happen, and some clients refuse such keys outright.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from clickstream_ops.check.results import ServiceChecks


@dataclass(frozen=True)
class CertFile:
    variable: str
    path: Path
    is_key: bool = False


# One return per thing that can be wrong, in the order a person would look.
def problem(cert: CertFile) -> tuple[str, str] | None:  # noqa: PLR0911
    """``(what is wrong, how to fix it)`` for one file, or None when it is fine."""
    where = f"{cert.variable}={cert.path}"
    try:
        info = cert.path.stat()
    except FileNotFoundError:
        return f"{where}: no such file", f"download it again or fix the path in {cert.variable}"
    except OSError as exc:
        return f"{where}: {exc.strerror}", f"check the directory permissions of {cert.path.parent}"
    if not stat.S_ISREG(info.st_mode):
        return f"{where}: not a regular file", f"point {cert.variable} at the file itself"
    try:
        head = cert.path.read_bytes()[:4096]
    except OSError as exc:
        return f"{where}: cannot be read ({exc.strerror})", f"chmod u+r {cert.path}"
    if b"-----BEGIN " not in head:
        return f"{where}: not a PEM file", f"{cert.variable} must be a PEM file (-----BEGIN ...)"
    if cert.is_key and info.st_mode & 0o077:
        mode = stat.filemode(info.st_mode)
        return (
            f"{where}: private key is readable by group or others ({mode})",
            f"chmod 600 {cert.path}",
        )
    return None


def check_files(checks: ServiceChecks, files: list[CertFile]) -> None:
    """Report step ``certificates`` for the files a service is configured with."""
    if not files:
        checks.skip("certificates", "no certificate files configured")
        return
    for cert in files:
        found = problem(cert)
        if found is not None:
            checks.fail("certificates", *found)
            return
    names = ", ".join(f"{c.variable}={c.path}" for c in files)
    checks.ok("certificates", f"readable, keys private: {names}")
