"""The clickstream event: one frozen pydantic model, the single source of truth.

The JSON Schema in ``shared/event.schema.json``, the OpenSearch mapping and the
aggregator's validation all derive from (or are tested against) this module.
What each field accepts, and why (every store must hold it), is in
:mod:`clickstream_schema.fields`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    event_id: EventId = Field(description="Unique per event; duplicates carry the same id")
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
    device_type: DeviceType
    product_id: Identifier | None = None
    product_category: Identifier | None = None
    price: Price | None = None
    search_query: SearchQuery | None = None
    element_id: Identifier | None = None
    viewport_size: str = Field(pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
    geo: Geo | None = None

    @model_validator(mode="after")
    def _required_by_type(self) -> Self:
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
