"""What the relay writes to the dead-letter topic for one outbox row.

A copy carries the original key, value and timestamp and Kafka Connect's
``__connect.errors.*`` headers, so that tools made for Connect's dead-letter
queues read it. Two things can stop a row from fitting in a Kafka record:

* it is larger than the relay's record budget (an ``oversize`` message is,
  by definition): the copy keeps the headers, the key if it fits in half the
  budget, and the first bytes of the value; ``clickstream.errors.truncated``
  names what was cut and ``clickstream.errors.original.*.bytes`` the original
  sizes (-1: null);
* Kafka refused the copy once (a broker whose ``message.max.bytes`` is smaller
  than the budget, a record it cannot take): the next copy is *headers only*
  (empty value, no key).

aiokafka cannot send a record with neither key nor value (a keyless
tombstone): its copy has an empty value and ``...original.value.bytes: -1``.
The original bytes always stay in the ``dead_letters`` table. The copy of a
row depends only on the row and the budget, so a copy sent again after a
crash is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.record.default_records import DefaultRecordBatchBuilder

HEADER_TOPIC = "__connect.errors.topic"
HEADER_PARTITION = "__connect.errors.partition"
HEADER_OFFSET = "__connect.errors.offset"
HEADER_STAGE = "__connect.errors.stage"
HEADER_CLASS = "__connect.errors.class.name"
HEADER_EXCEPTION = "__connect.errors.exception.class.name"
HEADER_MESSAGE = "__connect.errors.exception.message"
HEADER_REASON = "clickstream.errors.reason"
HEADER_TRUNCATED = "clickstream.errors.truncated"
HEADER_KEY_BYTES = "clickstream.errors.original.key.bytes"
HEADER_VALUE_BYTES = "clickstream.errors.original.value.bytes"
#: The stage's class (Connect names its converter or task here). A stable value
#: that consumers of the dead-letter topic may filter on: it is the module that
#: decoded messages when the header was introduced, and stays as it was since.
STAGE_CLASS = b"clickstream_aggregator.validate"

#: Error messages are written by us, but may quote the message: keep them short.
MAX_ERROR_MESSAGE_BYTES = 4096
#: Room for the record batch's own framing, beyond the record's estimate.
_FRAMING_BYTES = 128

Kind = Literal["full", "truncated", "headers_only"]
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Copy:
    key: bytes | None
    value: bytes
    timestamp_ms: int | None
    headers: Headers
    kind: Kind

    @property
    def size(self) -> int:
        return record_size(self.key, self.value, self.headers)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """The bytes aiokafka counts against ``max_request_size`` for one record, plus framing."""
    estimate: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    return estimate + _FRAMING_BYTES


def _clip(text: str, limit: int) -> bytes:
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return data
    # Cut on a character boundary, and say that it was cut.
    return data[: limit - 3].decode("utf-8", "ignore").encode() + b"..."


def connect_headers(topic: str, partition: int, row: Mapping[str, Any]) -> Headers:
    """Kafka Connect's dead-letter headers (plus the reason) for one outbox row."""
    return [
        (HEADER_TOPIC, topic.encode()),
        (HEADER_PARTITION, str(partition).encode()),
        (HEADER_OFFSET, str(row["source_offset"]).encode()),
        (HEADER_STAGE, b"VALUE_CONVERTER" if row["reason"] != "schema" else b"TASK_PUT"),
        (HEADER_CLASS, STAGE_CLASS),
        (HEADER_EXCEPTION, str(row["error_class"]).encode("utf-8", "backslashreplace")),
        (HEADER_MESSAGE, _clip(str(row["error_message"]), MAX_ERROR_MESSAGE_BYTES)),
        (HEADER_REASON, str(row["reason"]).encode()),
    ]


def build_copy(
    topic: str, partition: int, row: Mapping[str, Any], *, max_bytes: int, refused: int = 0
) -> Copy:
    """The record for ``row``: whole if it fits in ``max_bytes``, else cut (see the module).

    ``refused`` is how many times Kafka refused this row's copy before (the
    ``relay_attempts`` column): from the first refusal on, the copy is headers only.
    """
    key: bytes | None = row["message_key"]
    original: bytes | None = row["message_value"]
    value = original if original is not None else b""
    timestamp = row["message_timestamp_ms"]
    headers = connect_headers(topic, partition, row)
    if key is None and original is None:
        headers.append((HEADER_VALUE_BYTES, b"-1"))  # -1: the original value was null
    if refused == 0 and record_size(key, value, headers) <= max_bytes:
        return Copy(key, value, timestamp, headers, "full")

    headers = connect_headers(topic, partition, row)
    sizes: Headers = [
        (HEADER_KEY_BYTES, str(-1 if key is None else len(key)).encode()),
        (HEADER_VALUE_BYTES, str(-1 if original is None else len(original)).encode()),
    ]
    if refused:
        cut = [*headers, (HEADER_TRUNCATED, b"key,value"), *sizes]
        return Copy(None, b"", timestamp, cut, "headers_only")

    cut_key = key if key is None or len(key) <= max_bytes // 2 else None
    # Room for the value with the longest header this can get ("key,value").
    framed = [*headers, (HEADER_TRUNCATED, b"key,value"), *sizes]
    # Varint lengths grow by a few bytes with the value: leave them room.
    room = max(0, max_bytes - record_size(cut_key, b"", framed) - 8)
    kept = value[:room]
    names = [b"key"] if cut_key is None and key is not None else []
    if len(kept) < len(value):
        names.append(b"value")
    cut = [*headers, (HEADER_TRUNCATED, b",".join(names)), *sizes]
    return Copy(cut_key, kept, timestamp, cut, "truncated")
