"""``python -m clickstream_devstack.images``: build the three images with podman (``make images``).

Exit status: 0 built, 2 podman cannot run here (the reason on stderr), 1 a build failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clickstream_devstack.images.build import IMAGES, build_all, cache_dir
from clickstream_devstack.images.podman import Podman, PodmanUnavailableError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clickstream_devstack.images",
        description=(
            "Build "
            + ", ".join(spec.tag for spec in IMAGES)
            + " with podman, offline: a stand-in for the pinned base image and a wheelhouse "
            f"of requirements.lock are cached in {cache_dir()} (first run: a few minutes)."
        ),
    )
    parser.parse_args(argv)
    try:
        podman = Podman.find()
        report = build_all(podman)
    except PodmanUnavailableError as error:
        print(f"images not built: {error}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
