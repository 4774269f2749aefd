"""A worker's result on its way back to the service: the session rows as MessagePack.

Pickling a :class:`~clickstream_aggregator.prepare.Prepared` spends most of its
time on the session rows, a reduce call per datetime and Decimal; msgspec
encodes the rows in C, about five times faster, and decodes them by each
column's type (``session_columns``) to equal values. An aware datetime comes
back in UTC: the same instant, which is all PostgreSQL stores. Rows msgspec
cannot encode (an integer beyond 64 bits) travel pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from clickstream_aggregator.prepare import Prepared
from clickstream_aggregator.session_columns import UPSERT_COLUMNS

#: What a column's values decode to, by its ``unnest`` type; anything else as encoded.
_TYPES: Final[dict[str, Any]] = {"timestamptz": datetime | None, "numeric": Decimal | None}


def _rows_type() -> Any:
    return tuple[tuple(list[_TYPES.get(c.array_type, Any)] for c in UPSERT_COLUMNS)]  # type: ignore[misc]


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(_rows_type())


@dataclass(frozen=True, slots=True)
class Handback:
    """A :class:`Prepared` without its session rows, and the rows encoded."""

    prepared: Prepared
    rows: bytes


def handed_back(prepared: Prepared) -> Prepared | Handback:
    """What a worker returns for ``prepared``: see :func:`received`."""
    try:
        rows = _ENCODER.encode(prepared.session_rows)
    except (TypeError, OverflowError):
        return prepared
    return Handback(replace(prepared, session_rows=[]), rows)


def received(result: Prepared | Handback) -> Prepared:
    """The :class:`Prepared` a worker handed back."""
    if isinstance(result, Prepared):
        return result
    return replace(result.prepared, session_rows=list(map(list, _DECODER.decode(result.rows))))
