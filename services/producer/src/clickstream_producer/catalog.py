"""The simulated shop: site map, categories, products with prices, search terms, referrers.

Everything is built once from a seeded RNG so that a seed fixes the whole site;
the hot path only picks from these precomputed tuples.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from typing import Final
from urllib.parse import quote_plus

import orjson

BASE_URL: Final = "https://shop.example.com"
HOME_URL: Final = f"{BASE_URL}/"
CART_URL: Final = f"{BASE_URL}/cart"
CHECKOUT_URL: Final = f"{BASE_URL}/checkout"
LOGIN_URL: Final = f"{BASE_URL}/account/login"
CONTENT_URLS: Final = tuple(
    f"{BASE_URL}{path}"
    for path in ("/about", "/help/shipping", "/help/returns", "/contact", "/blog/style-guide")
)

_CENT: Final = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Location:
    """A page as events carry it, with its JSON fragments rendered once for the wire.

    ``url_json`` follows ``"page_url":``; ``context_json`` is the product fields
    of the page (or ``b""``), in the contract's field order.
    """

    url: str
    product_id: str | None = None
    category: str | None = None
    url_json: bytes = field(init=False, repr=False)
    context_json: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        context = b""
        if self.product_id is not None:
            context += b',"product_id":' + orjson.dumps(self.product_id)
        if self.category is not None:
            context += b',"product_category":' + orjson.dumps(self.category)
        object.__setattr__(self, "url_json", orjson.dumps(self.url))
        object.__setattr__(self, "context_json", context)


HOME: Final = Location(HOME_URL)
CART: Final = Location(CART_URL)
CHECKOUT: Final = Location(CHECKOUT_URL)
LOGIN: Final = Location(LOGIN_URL)
CONTENT: Final = tuple(Location(url) for url in CONTENT_URLS)


@dataclass(frozen=True, slots=True)
class Category:
    slug: str
    location: Location
    #: Median and spread of the log-normal price distribution of its products.
    median_price: float
    price_sigma: float
    search_terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    category: Category
    price: Decimal
    location: Location


@dataclass(frozen=True, slots=True)
class Referrer:
    url: str | None
    #: "search", "social", "campaign" or "direct": decides the landing page.
    channel: str


# slug, median price, sigma, search terms: prices are what a mid-market web shop charges.
_CATEGORY_SPECS: Final[tuple[tuple[str, float, float, tuple[str, ...]], ...]] = (
    ("shoes", 79.0, 0.45, ("running shoes", "sneakers", "boots", "sandals", "trail shoes")),
    ("clothing", 39.0, 0.55, ("t-shirt", "jeans", "rain jacket", "hoodie", "summer dress")),
    ("electronics", 149.0, 0.9, ("headphones", "usb-c charger", "smartwatch", "webcam", "ssd")),
    ("books", 16.0, 0.4, ("python programming", "cookbook", "fantasy novel", "biography")),
    ("home-kitchen", 34.0, 0.7, ("coffee grinder", "knife set", "frying pan", "blender")),
    ("beauty", 22.0, 0.5, ("sunscreen", "moisturizer", "shampoo", "perfume")),
    ("sports", 45.0, 0.8, ("yoga mat", "dumbbells", "bike helmet", "tennis racket")),
    ("toys", 25.0, 0.6, ("lego", "board game", "puzzle", "plush toy")),
    ("garden", 29.0, 0.7, ("garden hose", "plant pot", "pruning shears", "seeds")),
    ("jewelry", 89.0, 0.8, ("silver necklace", "earrings", "wedding ring", "bracelet")),
)
_QUERY_MODIFIERS: Final = ("", "", "", "cheap ", "best ", "women's ", "men's ", "kids ", "sale ")

SEARCH_REFERRERS: Final = (
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://search.yahoo.com/",
)
SOCIAL_REFERRERS: Final = (
    "https://www.facebook.com/",
    "https://t.co/",
    "https://www.instagram.com/",
    "https://www.reddit.com/",
    "https://www.pinterest.com/",
    "https://www.tiktok.com/",
)
CAMPAIGN_REFERRERS: Final = (
    "https://mail.google.com/",
    "https://outlook.live.com/",
    "https://www.googleadservices.com/",
    "https://newsletter.shop.example.com/",
)
CAMPAIGNS: Final = ("spring-sale", "black-friday", "newsletter-weekly", "retargeting")
_CAMPAIGN_QUERY: Final = "utm_source=email&utm_medium=campaign&utm_campaign="

# Share of sessions per channel: organic search leads, as on most shops.
_CHANNEL_WEIGHTS: Final = (("search", 0.40), ("direct", 0.30), ("social", 0.15), ("campaign", 0.15))


def _price(rng: random.Random, category: Category) -> Decimal:
    raw = rng.lognormvariate(0.0, category.price_sigma) * category.median_price
    # Shops price just below round numbers: 79.99, 24.95, 149.00.
    whole = max(1, round(raw))
    cents = rng.choice((0.99, 0.99, 0.95, 0.49, 0.0))
    return (Decimal(whole - 1 if cents else whole) + Decimal(str(cents))).quantize(_CENT)


def _pick(rng: random.Random, cum_weights: list[float]) -> int:
    """Index drawn by cumulative weights: random.choices costs ~5x more for one draw."""
    return bisect(cum_weights, rng.random() * cum_weights[-1])


class Catalog:
    """Categories and products with popularity weights (a few products sell most)."""

    def __init__(self, rng: random.Random, products_per_category: int = 100) -> None:
        self.categories: tuple[Category, ...] = tuple(
            Category(
                slug=slug,
                location=Location(f"{BASE_URL}/category/{slug}", category=slug),
                median_price=median,
                price_sigma=sigma,
                search_terms=terms,
            )
            for slug, median, sigma, terms in _CATEGORY_SPECS
        )
        products: list[Product] = []
        for number in range(1, len(self.categories) * products_per_category + 1):
            category = self.categories[(number - 1) % len(self.categories)]
            product_id = f"P-{number:05d}"
            location = Location(f"{BASE_URL}/product/{product_id}", product_id, category.slug)
            products.append(Product(product_id, category, _price(rng, category), location))
        rng.shuffle(products)
        self.products: tuple[Product, ...] = tuple(products)
        self.by_category: dict[str, tuple[Product, ...]] = {
            c.slug: tuple(p for p in products if p.category is c) for c in self.categories
        }
        # Zipf-like popularity, precomputed as cumulative weights for random.choices.
        self._product_cum = list(
            accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(len(products)))
        )
        self._category_cum = {
            slug: list(accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(len(items))))
            for slug, items in self.by_category.items()
        }
        self.search_queries: tuple[tuple[str, Location, Category], ...] = tuple(
            (query, Location(f"{BASE_URL}/search?q={quote_plus(query)}"), category)
            for category in self.categories
            for term in category.search_terms
            for query in sorted({f"{modifier}{term}" for modifier in _QUERY_MODIFIERS})
        )
        self._campaign_pages = tuple(
            (Location(f"{c.location.url}?{_CAMPAIGN_QUERY}{campaign}", category=c.slug), c)
            for c in self.categories
            for campaign in CAMPAIGNS
        )
        self._channels = tuple(name for name, _ in _CHANNEL_WEIGHTS)
        self._channel_cum = list(accumulate(weight for _, weight in _CHANNEL_WEIGHTS))

    def popular_product(self, rng: random.Random) -> Product:
        return self.products[_pick(rng, self._product_cum)]

    def product_in(self, rng: random.Random, category: Category) -> Product:
        return self.by_category[category.slug][_pick(rng, self._category_cum[category.slug])]

    def search(self, rng: random.Random) -> tuple[str, Location, Category]:
        """A (query, results page, category the query is about)."""
        queries = self.search_queries
        return queries[int(rng.random() * len(queries))]

    def referrer(self, rng: random.Random) -> Referrer:
        channel = self._channels[_pick(rng, self._channel_cum)]
        if channel == "search":
            return Referrer(rng.choice(SEARCH_REFERRERS), channel)
        if channel == "social":
            return Referrer(rng.choice(SOCIAL_REFERRERS), channel)
        if channel == "campaign":
            return Referrer(rng.choice(CAMPAIGN_REFERRERS), channel)
        return Referrer(None, channel)

    def campaign_landing(self, rng: random.Random) -> tuple[Location, Category]:
        index = int(rng.random() * len(self._campaign_pages))
        return self._campaign_pages[index]
