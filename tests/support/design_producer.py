"""Messages shaped exactly like the design's reference producer writes them.

The design this product grew from ships a ``producer.py`` built on kafka-python:
``KafkaProducer(key_serializer=str.encode, value_serializer=lambda v:
json.dumps(v).encode("utf-8"))`` and ``send(topic, key=event["user_id"],
value=event)``. So its messages are ``json.dumps`` of a dict (", " and ": "
separators, ASCII escapes), keyed by ``user_id``, with:

* no ``event_id``, no ``device_type``, no ``viewport_size``, no ``schema_version``;
* ``timestamp`` from ``datetime.now(timezone.utc).isoformat()``: ``+00:00``, and
  microseconds only when they are not zero;
* ``referrer`` a URL or ``null`` (direct traffic), ``ip_address``, ``user_agent``;
* event-specific fields only where they apply: ``element_id`` (click, hover),
  ``product_id``/``product_category``/``price`` as a float (add_to_cart, purchase),
  ``search_query`` (search).

A user's sessions follow one another (a new ``session_id`` after a pause), so
with ``user_id`` keys a session's events stay in its user's partition.

kafka-python's default partitioner (murmur2 of the key, like Java's) is the one
aiokafka uses, so :func:`publish` through aiokafka places each message where
kafka-python would. A *re-send* is the same bytes sent again (kafka-python's
retries, or the application sending the same dict twice).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
EVENT_TYPES = (
    "page_view", "click", "scroll", "hover", "add_to_cart", "search", "login",
    "purchase", "share",
)  # fmt: skip
WEIGHTS = (35, 20, 15, 8, 6, 4, 2.5, 0.8, 1)
PAGES = ("/", "/products", "/products/{p}", "/search", "/cart", "/checkout", "/account")
REFERRERS = ("https://www.google.com/", "https://www.facebook.com/", "https://t.co/x", None)
CATEGORIES = ("Electronics", "Books", "Clothing", "Home & Garden", "Sports")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)

Message = tuple[bytes, bytes]  # (key, value)


@dataclass
class _User:
    user_id: str
    ip_address: str
    user_agent: str
    session_id: str = ""
    session_events: int = 0


def design_event(rng: random.Random, user: _User, at: datetime) -> dict[str, Any]:
    """One event dict as the reference producer builds it."""
    event_type = rng.choices(EVENT_TYPES, WEIGHTS)[0]
    product = f"prod_{rng.randrange(1, 500)}"
    page = rng.choice(PAGES).format(p=product)
    if event_type == "purchase":
        page = "/checkout"
    elif event_type == "search":
        page = "/search"
    event: dict[str, Any] = {
        "timestamp": at.isoformat(),
        "user_id": user.user_id,
        "session_id": user.session_id,
        "event_type": event_type,
        "page_url": f"https://shop.example.com{page}",
        "referrer": rng.choice(REFERRERS),
        "user_agent": user.user_agent,
        "ip_address": user.ip_address,
    }
    if event_type in ("click", "hover"):
        event["element_id"] = rng.choice(("buy-button", "nav-home", "banner", "footer-link"))
    if event_type in ("add_to_cart", "purchase"):
        event["product_id"] = product
        event["product_category"] = rng.choice(CATEGORIES)
        event["price"] = round(rng.uniform(5, 500), 2)
    if event_type == "search":
        event["search_query"] = rng.choice(("laptop", "running shoes", "café crème", "lamp"))
    return event


def design_messages(count: int, *, seed: int = 3, users: int = 60) -> list[Message]:
    """``count`` messages as the reference producer sends them, in send order."""
    rng = random.Random(seed)
    people = [
        _User(
            f"user_{n}",
            ".".join(str(rng.randrange(1, 224)) for _ in range(4)),
            rng.choice(AGENTS),
        )
        for n in range(users)
    ]
    at = START
    out: list[Message] = []
    for _ in range(count):
        user = rng.choice(people)
        if not user.session_id or user.session_events >= rng.randrange(3, 40):
            user.session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            user.session_events = 0
        user.session_events += 1
        # Time moves on with every event, so no two messages are byte-identical
        # (two that were would be one event: see README). Whole seconds now and
        # then: isoformat() then prints no fraction at all.
        at += timedelta(microseconds=rng.randrange(1, 3_000_000))
        if rng.random() < 0.1:
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        event = design_event(rng, user, at)
        out.append((event["user_id"].encode(), json.dumps(event).encode("utf-8")))
    return out


def with_resends(messages: list[Message], *, seed: int = 4, share: float = 0.05) -> list[Message]:
    """The messages with a share of them sent again byte for byte, later in the stream."""
    rng = random.Random(seed)
    out = list(messages)
    for message in rng.sample(messages, int(len(messages) * share)):
        out.insert(rng.randrange(out.index(message) + 1, len(out) + 1), message)
    return out


async def publish(bootstrap: str, topic: str, messages: list[Message]) -> None:
    """Send in order with the default (murmur2) partitioner, as kafka-python does."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in messages]
        for future in futures:
            await future
    finally:
        await producer.stop()
