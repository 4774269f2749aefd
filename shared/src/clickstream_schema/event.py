"""The clickstream event: one frozen pydantic model, the single source of truth.

The JSON Schema in ``shared/event.schema.json``, the OpenSearch mapping and the
aggregator's validation all derive from (or are tested against) this module.
What each field accepts, and why (every store must hold it), is in
:mod:`clickstream_schema.fields`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic.config import JsonDict

from clickstream_schema.fields import (
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    EventId,
    Identifier,
    IpAddress,
    Latitude,
    Longitude,
    Price,
    SchemaVersion,
    SearchQuery,
    Text,
    Timestamp,
)

SCHEMA_VERSION: Final = 1

#: What a parsed event's ``event_id`` *is* (by identity, never by value) when the
#: message carried none: :func:`clickstream_schema.codec.decode` replaces it with
#: the id derived from the message bytes, so no decoded event ever holds it. A
#: message that spells out the nil UUID is a different object and keeps it.
UNSENT_EVENT_ID: Final = UUID(int=0)
#: Device type stored for an event that did not say (the design's producer does not).
UNKNOWN_DEVICE: Final = "unknown"


class EventType(StrEnum):
    PAGE_VIEW = "page_view"
    CLICK = "click"
    SCROLL = "scroll"
    HOVER = "hover"
    ADD_TO_CART = "add_to_cart"
    SEARCH = "search"
    LOGIN = "login"
    PURCHASE = "purchase"
    SHARE = "share"


#: Relative frequency of each event type in generated traffic (design contract).
EVENT_TYPE_WEIGHTS: Final[dict[EventType, float]] = {
    EventType.PAGE_VIEW: 35.0,
    EventType.CLICK: 20.0,
    EventType.SCROLL: 15.0,
    EventType.HOVER: 8.0,
    EventType.ADD_TO_CART: 6.0,
    EventType.SEARCH: 4.0,
    EventType.LOGIN: 2.5,
    EventType.PURCHASE: 0.8,
    EventType.SHARE: 1.0,
}


class DeviceType(StrEnum):
    DESKTOP = "desktop"
    MOBILE = "mobile"
    TABLET = "tablet"


def _no_default(schema: JsonDict) -> None:
    # The sentinel is not a value anyone should send; the description says what happens.
    schema.pop("default", None)


_FROZEN = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class GeoPoint(BaseModel):
    model_config = _FROZEN

    lat: Latitude
    lon: Longitude


class Geo(BaseModel):
    model_config = _FROZEN

    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code")
    city: Identifier
    location: GeoPoint


class ClickEvent(BaseModel):
    """One user interaction on the website, as it travels on the events topic."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        title="ClickEvent",
        json_schema_extra={"$id": "https://clickstream.example/schemas/click-event.json"},
    )

    event_id: EventId = Field(
        default=UNSENT_EVENT_ID,
        description=(
            "Unique per event; duplicates carry the same id. When absent, the consumer "
            "derives it from the exact message bytes (a UUID version 5), so only a "
            "byte-identical re-send counts as the same event"
        ),
        json_schema_extra=_no_default,
    )
    schema_version: SchemaVersion = Field(default=SCHEMA_VERSION)
    timestamp: Timestamp = Field(
        description=(
            "Event time, RFC 3339 with a UTC offset (at most ±18:00); as a UTC instant "
            f"within [{TIMESTAMP_MIN.isoformat()}, {TIMESTAMP_MAX.isoformat()})"
        )
    )
    user_id: Identifier
    session_id: Identifier = Field(description="Kafka message key")
    event_type: EventType
    page_url: Text
    referrer: Text | None = None
    user_agent: Text
    ip_address: IpAddress
    device_type: DeviceType | None = Field(
        default=None, description=f"Absent: stored as {UNKNOWN_DEVICE!r}"
    )
    product_id: Identifier | None = None
    product_category: Identifier | None = None
    price: Price | None = None
    search_query: SearchQuery | None = None
    element_id: Identifier | None = None
    viewport_size: str | None = Field(default=None, pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
    geo: Geo | None = None

    @model_validator(mode="after")
    def _required(self, info: ValidationInfo) -> Self:
        """event_id from Python callers; price, search_query, element_id by event type."""
        # Only a message may leave event_id out (decode derives it from the bytes);
        # Python callers have no bytes to derive it from, so they must give one.
        if self.event_id is UNSENT_EVENT_ID and info.mode != "json":
            raise ValueError("event_id is required (only a JSON message may leave it out)")
        missing = _REQUIRED_BY_TYPE.get(self.event_type)
        if missing is not None and getattr(self, missing) is None:
            raise ValueError(f"{missing} is required for {self.event_type.value} events")
        return self


_REQUIRED_BY_TYPE: Final[dict[EventType, str]] = {
    EventType.ADD_TO_CART: "price",
    EventType.PURCHASE: "price",
    EventType.SEARCH: "search_query",
    EventType.CLICK: "element_id",
}
