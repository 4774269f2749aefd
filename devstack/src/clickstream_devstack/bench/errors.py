"""The bench's one error: a scenario could not produce its figure."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A scenario could not produce its figure; the message says why and where to look."""
