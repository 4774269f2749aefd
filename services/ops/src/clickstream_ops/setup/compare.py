"""Is what the cluster holds already what we want? (the test behind idempotent PUTs)

OpenSearch answers a GET with more than was PUT: defaults (an ISM action's
``retry``), bookkeeping (``last_updated_time``) and settings rendered as strings
(``"number_of_shards": "1"``). So "unchanged" means: every key we set is there
with an equal value; extra keys on the server are ignored. The price is that a
key *removed* from an asset is not noticed - change a value (e.g. the
description) along with such a removal.
"""

from __future__ import annotations

from typing import Any


def contains(existing: Any, desired: Any) -> bool:
    """True when ``desired`` is a recursive subset of ``existing``."""
    if isinstance(desired, dict):
        return isinstance(existing, dict) and all(
            key in existing and contains(existing[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(desired)
            and all(contains(have, want) for have, want in zip(existing, desired, strict=True))
        )
    return _scalar(existing) == _scalar(desired)


def _scalar(value: Any) -> str | None:
    # Settings come back as strings ("1", "true"); compare their rendered forms.
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
