"""A worker's result on its way back to the service: the session rows as MessagePack.

Pickling a :class:`~clickstream_aggregator.prepare.Prepared` spends most of its
time on the session rows; msgspec encodes them in C, several times faster. The
rows hold only text, integers, None and lists of integers
(``session_columns``), which MessagePack gives back equal. Rows msgspec cannot
encode (an integer beyond 64 bits) travel pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

import msgspec

from clickstream_aggregator.prepare import Prepared

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(list[list[Any]])


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
    return replace(result.prepared, session_rows=_DECODER.decode(result.rows))
