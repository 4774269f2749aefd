"""The clickstream event contract shared by every component of the pipeline.

Everything a producer, consumer, sink or dashboard must agree on lives here:
the frozen event model, the names of topics and indices, and the wire codec.
"""

from clickstream_schema.codec import (
    DERIVED_ID_NAMESPACE,
    InvalidEvent,
    decode,
    derived_event_id,
    encode,
    parse,
    with_derived_id,
)
from clickstream_schema.event import (
    EVENT_TYPE_WEIGHTS,
    SCHEMA_VERSION,
    UNKNOWN_DEVICE,
    UNSENT_EVENT_ID,
    ClickEvent,
    DeviceType,
    EventType,
    Geo,
    GeoPoint,
)
from clickstream_schema.fields import TIMESTAMP_MAX, TIMESTAMP_MIN
from clickstream_schema.topics import (
    CONNECT_DLQ_TOPIC,
    CONSUMER_GROUP,
    DLQ_TOPIC,
    EVENTS_TOPIC,
    INDEX_PATTERN,
    INDEX_PREFIX,
)

__all__ = [
    "CONNECT_DLQ_TOPIC",
    "CONSUMER_GROUP",
    "DERIVED_ID_NAMESPACE",
    "DLQ_TOPIC",
    "EVENTS_TOPIC",
    "EVENT_TYPE_WEIGHTS",
    "INDEX_PATTERN",
    "INDEX_PREFIX",
    "SCHEMA_VERSION",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "UNKNOWN_DEVICE",
    "UNSENT_EVENT_ID",
    "ClickEvent",
    "DeviceType",
    "EventType",
    "Geo",
    "GeoPoint",
    "InvalidEvent",
    "decode",
    "derived_event_id",
    "encode",
    "parse",
    "with_derived_id",
]
