"""Build the services' container images with podman and run them, without a registry.

Docker cannot run on the development and CI machines, but Debian's podman can
(with ``runc``, cgroupfs and explicit ulimits: :mod:`.podman`). The Dockerfile's
pinned base image cannot be pulled, so :mod:`.base` builds a stand-in with the
same name from Debian packages and this machine's CPython 3.11; :mod:`.wheelhouse`
downloads the lock's wheels once so the builds run offline; :mod:`.build` builds
the Dockerfile's three targets unchanged; :mod:`.containers` runs them. The base image and
the wheelhouse are cached under ``.cache/images`` (ignored by git) and podman keeps
the layers, so a second build redoes only the images whose sources changed.
"""

from clickstream_devstack.images.podman import Podman, PodmanUnavailableError

__all__ = ["Podman", "PodmanUnavailableError"]
