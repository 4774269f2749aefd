"""A stand-in for the Dockerfile's pinned base image, built without a registry.

The Dockerfile's stages start ``FROM python:3.11.<n>-slim-bookworm``, which cannot be
pulled here. What that image provides is Debian bookworm with a CPython 3.11
under ``/usr/local`` (``python``/``python3`` on PATH, ``venv`` and ``ensurepip``
working, ``groupadd``/``useradd`` from ``passwd``). The stand-in is exactly that:
``debootstrap`` bookworm from Debian's mirror, plus the CPython 3.11 this
process runs on copied to ``/usr/local``, imported into podman under the pinned
name so the Dockerfile builds unchanged. An image already present under that
name (a real pull) is used as it is.

The root file system is kept as a tarball in the cache, so a wiped podman
storage costs an import (seconds), not a debootstrap (minutes).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import structlog

from clickstream_devstack.images.podman import Podman, PodmanUnavailableError

log = structlog.get_logger()

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: What python:*-slim-bookworm installs, plus the libraries CPython's own
#: extension modules link (ssl, sqlite3, readline, curses, dbm, expat, nis).
PACKAGES = (
    "ca-certificates",
    "netbase",
    "tzdata",
    "libssl3",
    "libffi8",
    "libsqlite3-0",
    "libbz2-1.0",
    "liblzma5",
    "zlib1g",
    "libreadline8",
    "libncursesw6",
    "libuuid1",
    "libgdbm6",
    "libexpat1",
    "libnsl2",
)
#: Modules the smoke test imports inside the root file system before it is kept.
_SMOKE = "import ctypes, bz2, lzma, zlib, ssl, sqlite3, uuid, readline, venv, ensurepip"
_LABEL = "io.clickstream.stand-in"
_PYTHON_IMAGE = re.compile(r"^ARG\s+PYTHON_IMAGE=(\S+)\s*$", re.MULTILINE)


def pinned_base(dockerfile: Path) -> str:
    """The ``PYTHON_IMAGE`` default a Dockerfile pins (``python:3.11.13-slim-bookworm``)."""
    match = _PYTHON_IMAGE.search(dockerfile.read_text())
    if match is None:
        raise ValueError(f"{dockerfile}: no `ARG PYTHON_IMAGE=...` default")
    return match.group(1)


def qualified(name: str) -> str:
    """The name podman resolves a Docker Hub short name to (``docker.io/library/...``)."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def ensure_base(podman: Podman, name: str, cache: Path) -> str:
    """Make ``name`` available to podman; return how (``present``/``imported``/``built``)."""
    image = qualified(name)
    tarball = cache / f"base-{_slug(name)}-{_key()}.tar"
    if podman.image_exists(image):
        made_from = _stand_in_label(podman, image)
        # A real pull (no label) or the current stand-in; an older stand-in is replaced.
        if made_from in {"", tarball.name}:
            return "present"
    how = "imported"
    if not tarball.exists():
        _build_tarball(tarball)
        how = "built"
    podman.run(
        "import",
        "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change", "ENV LANG=C.UTF-8",
        "--change", f"ENV PYTHON_VERSION={platform.python_version()}",
        "--change", f"LABEL {_LABEL}={tarball.name}",
        "--change", 'CMD ["python3"]',
        str(tarball),
        image,
        timeout=600,
    )  # fmt: skip
    log.info("base_image_ready", image=image, how=how, tarball=str(tarball))
    return how


def _stand_in_label(podman: Podman, image: str) -> str:
    template = f'{{{{index .Config.Labels "{_LABEL}"}}}}'
    label = podman.run("image", "inspect", "--format", template, image, timeout=60).stdout.strip()
    return "" if label == "<no value>" else label


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name)


def _key() -> str:
    # The stand-in changes when the Python copied in or the package list does.
    source = f"{sys.version}|{sys.base_prefix}|{SUITE}|{' '.join(PACKAGES)}"
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def _build_tarball(tarball: Path) -> None:
    prefix = Path(sys.base_prefix)
    _check_can_build(prefix)
    rootfs = tarball.with_suffix(".rootfs")
    shutil.rmtree(rootfs, ignore_errors=True)
    tarball.parent.mkdir(parents=True, exist_ok=True)
    try:
        log.info("debootstrap_started", suite=SUITE, target=str(rootfs))
        _check_call(
            "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            SUITE, str(rootfs), MIRROR, timeout=1800,
        )  # fmt: skip
        _copy_python(prefix, rootfs / "usr" / "local")
        # Drop the package downloads and lists, as the slim image does.
        for folder in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
            for entry in folder.glob("*"):
                if entry.is_file():
                    entry.unlink()
        _check_call("chroot", str(rootfs), "/sbin/ldconfig", timeout=120)
        _check_call("chroot", str(rootfs), "/usr/local/bin/python3", "-c", _SMOKE, timeout=120)
        partial = tarball.with_suffix(".partial")
        _check_call("tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), ".",
                    timeout=600)  # fmt: skip
        partial.rename(tarball)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _check_can_build(prefix: Path) -> None:
    if os.geteuid() != 0:
        raise PodmanUnavailableError("building the stand-in base image needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        raise PodmanUnavailableError("debootstrap is not installed (apt-get install debootstrap)")
    if sys.version_info[:2] != (3, 11):
        raise PodmanUnavailableError(f"the stand-in copies this CPython, not 3.11: {sys.version}")
    if prefix == Path("/usr") or not (prefix / "bin" / "python3.11").exists():
        raise PodmanUnavailableError(
            f"the stand-in needs a self-contained CPython 3.11 (pyenv, python.org), not {prefix}"
        )


def _copy_python(prefix: Path, local: Path) -> None:
    """The interpreter, its shared library and its standard library, no third-party packages."""
    version = sysconfig.get_python_version()
    (local / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(prefix / "bin" / f"python{version}", local / "bin" / f"python{version}")
    for alias in ("python3", "python"):
        (local / "bin" / alias).symlink_to(f"python{version}")
    (local / "lib").mkdir(parents=True, exist_ok=True)
    for library in prefix.joinpath("lib").glob(f"libpython{version}*.so*"):
        shutil.copy2(library, local / "lib" / library.name, follow_symlinks=False)
    stdlib = f"python{version}"
    shutil.copytree(
        prefix / "lib" / stdlib,
        local / "lib" / stdlib,
        symlinks=True,
        ignore=_stdlib_ignore(prefix / "lib" / stdlib),
    )
    (local / "lib" / stdlib / "site-packages").mkdir(exist_ok=True)
    shutil.copytree(prefix / "include", local / "include", symlinks=True, dirs_exist_ok=True)
    # The containers run as uid 10001: everything must be readable by all.
    _check_call("chmod", "-R", "a+rX", str(local), timeout=120)


def _stdlib_ignore(stdlib: Path) -> Callable[[str, list[str]], set[str]]:
    # The test suite, IDLE and the turtle demos (both need Tk), the static library
    # and everything installed on top of this machine's Python stay out.
    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == stdlib:
            return {n for n in names if n in {"test", "site-packages", "idlelib", "turtledemo"}}
        return {n for n in names if n.endswith(".a")}

    return ignore


def _check_call(*argv: str, timeout: float) -> None:
    result = subprocess.run(  # noqa: S603 - argv is built here, never by a shell
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv[:3])} ... exited {result.returncode}:\n{output}")
