"""Is what the cluster holds already what we want? (the test behind idempotent PUTs)

OpenSearch answers a GET with more than was PUT: defaults (an ISM action's
``retry``), bookkeeping (``last_updated_time``) and settings rendered as strings
(``"number_of_shards": "1"``). So "unchanged" means: every key we set is there
with an equal value; extra keys on the server are ignored. The price is that a
key *removed* from an asset is not noticed - change a value (e.g. the
description) along with such a removal.
"""

from __future__ import annotations

import json
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


def decode_json_strings(value: Any) -> Any:
    """``value`` with every string that holds a JSON object or array parsed, recursively.

    Dashboards stores much of a saved object as JSON *inside* strings (``visState``,
    ``fieldFormatMap``, ``panelsJSON``, a Vega ``spec``) and re-serialises them when
    an object is opened and saved: key order, spacing and dropped default params
    change while the meaning does not. Compared as parsed values, a re-save is not
    a difference.
    """
    if isinstance(value, dict):
        return {key: decode_json_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_json_strings(item) for item in value]
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return decode_json_strings(parsed)
    return value
