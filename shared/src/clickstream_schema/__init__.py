"""The clickstream event contract shared by every component of the pipeline.

Everything a producer, consumer, sink or dashboard must agree on lives here:
the frozen event model, the names of topics and indices, and the wire codec.
"""

from clickstream_schema.codec import InvalidEvent, decode, encode
from clickstream_schema.event import (
    EVENT_TYPE_WEIGHTS,
    SCHEMA_VERSION,
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
    "DLQ_TOPIC",
    "EVENTS_TOPIC",
    "EVENT_TYPE_WEIGHTS",
    "INDEX_PATTERN",
    "INDEX_PREFIX",
    "SCHEMA_VERSION",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "ClickEvent",
    "DeviceType",
    "EventType",
    "Geo",
    "GeoPoint",
    "InvalidEvent",
    "decode",
    "encode",
]
