"""The clickstream event: one frozen pydantic model, the single source of truth.

The JSON Schema in ``shared/event.schema.json``, the OpenSearch mapping and the
aggregator's validation all derive from (or are tested against) this module.
"""

from __future__ import annotations

import socket
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
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

# Prices travel as JSON numbers (what OpenSearch and most readers expect) but are
# exact decimals in Python so that revenue sums are exact.
Price = Annotated[
    Decimal,
    Field(ge=0, le=1_000_000, max_digits=10, decimal_places=2),
    PlainSerializer(float, return_type=float, when_used="json"),
]
Identifier = Annotated[str, Field(min_length=1, max_length=255)]


def _ip_address(value: str) -> str:
    # inet_pton is C code: ~20x faster than the ipaddress module on the hot path,
    # and it accepts exactly the textual IPv4/IPv6 forms PostgreSQL's INET does.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except OSError:
            continue
        return value
    raise ValueError("value is not a valid IPv4 or IPv6 address")


IpAddress = Annotated[
    str,
    Field(min_length=2, max_length=45),
    AfterValidator(_ip_address),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]
Text = Annotated[str, Field(min_length=1, max_length=2048)]


class GeoPoint(BaseModel):
    model_config = _FROZEN

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Geo(BaseModel):
    model_config = _FROZEN

    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2 code")
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

    event_id: UUID = Field(description="Unique per event; duplicates carry the same id")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION)
    timestamp: AwareDatetime = Field(description="Event time, ISO 8601 with a UTC offset")
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
    search_query: Annotated[str, Field(min_length=1, max_length=512)] | None = None
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
