"""The simulated shop: site map, categories, products with prices, search terms, referrers.

Everything is built once from a seeded RNG so that a seed fixes the whole site;
the hot path only picks from these precomputed tuples.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Final
from urllib.parse import quote_plus

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
class Category:
    slug: str
    url: str
    #: Median and spread of the log-normal price distribution of its products.
    median_price: float
    price_sigma: float
    search_terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    category: Category
    price: Decimal
    url: str


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
                url=f"{BASE_URL}/category/{slug}",
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
            products.append(
                Product(
                    product_id, category, _price(rng, category), f"{BASE_URL}/product/{product_id}"
                )
            )
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
        self.search_queries: tuple[tuple[str, str, Category], ...] = tuple(
            (query, f"{BASE_URL}/search?q={quote_plus(query)}", category)
            for category in self.categories
            for term in category.search_terms
            for query in {f"{modifier}{term}" for modifier in _QUERY_MODIFIERS}
        )
        self._by_id = {p.product_id: p for p in products}
        self._by_slug = {c.slug: c for c in self.categories}
        self._channels = tuple(name for name, _ in _CHANNEL_WEIGHTS)
        self._channel_cum = list(accumulate(weight for _, weight in _CHANNEL_WEIGHTS))

    def product_by_id(self, product_id: str) -> Product:
        return self._by_id[product_id]

    def category_by_slug(self, slug: str) -> Category:
        return self._by_slug[slug]

    def popular_product(self, rng: random.Random) -> Product:
        return self.products[_pick(rng, self._product_cum)]

    def product_in(self, rng: random.Random, category: Category) -> Product:
        return self.by_category[category.slug][_pick(rng, self._category_cum[category.slug])]

    def search(self, rng: random.Random) -> tuple[str, str, Category]:
        """A (query, results page URL, category the query is about)."""
        return rng.choice(self.search_queries)

    def referrer(self, rng: random.Random) -> Referrer:
        channel = self._channels[_pick(rng, self._channel_cum)]
        if channel == "search":
            return Referrer(rng.choice(SEARCH_REFERRERS), channel)
        if channel == "social":
            return Referrer(rng.choice(SOCIAL_REFERRERS), channel)
        if channel == "campaign":
            return Referrer(rng.choice(CAMPAIGN_REFERRERS), channel)
        return Referrer(None, channel)

    def campaign_url(self, rng: random.Random, category: Category) -> str:
        campaign = rng.choice(CAMPAIGNS)
        return f"{category.url}?utm_source=email&utm_medium=campaign&utm_campaign={campaign}"
