"""The ``.properties`` files that configure the JVM servers and OpenSearch's plugins."""

from __future__ import annotations

from collections.abc import Mapping


def java_properties(values: Mapping[str, object]) -> str:
    """A ``.properties`` file body (values are ours: no escaping beyond backslashes)."""
    return "".join(
        f"{key}={str(value).replace(chr(92), chr(92) * 2)}\n" for key, value in values.items()
    )
