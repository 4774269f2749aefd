"""One visit to the shop as a state machine: where the user is, what they do next, when.

A session lands on a page chosen by its referrer, then repeatedly picks an
action with weights that depend on the page it is on (search happens on the
search page, add-to-cart on product pages, purchases on /checkout). Actions
expand to one or more events with human think times between them (a click is
followed by the page view it causes about a second later). A session ends when
the user goes idle (the ``exit`` action) or its page budget is used up.

The action weights are calibrated so that, over many sessions, the event-type
shares match ``EVENT_TYPE_WEIGHTS`` of the contract (tested within ±10 % per type over
any 30,000 consecutive events, the first ones included).
"""

from __future__ import annotations

import copy
import random
from bisect import bisect
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from itertools import accumulate
from math import exp
from typing import Final, TypeVar

from clickstream_producer.catalog import (
    CART,
    CHECKOUT,
    CONTENT,
    HOME,
    LOGIN,
    Catalog,
    Category,
    Location,
    Product,
)
from clickstream_producer.wire import Step, Visit
from clickstream_schema import EventType

_T = TypeVar("_T")
_PV: Final = EventType.PAGE_VIEW
_CLICK: Final = EventType.CLICK


class Page(Enum):
    HOME = "home"
    CATEGORY = "category"
    PRODUCT = "product"
    SEARCH = "search"
    CART = "cart"
    CHECKOUT = "checkout"
    CONTENT = "content"


# Per page: (action, weight). Calibrated over millions of events so that every
# type's long-run share is within ~3 % of its weight (tests/unit/producer checks
# ±10 % over 30,000 events); a change to one weight shifts every share.
# fmt: off
_ACTIONS: Final[dict[Page, tuple[tuple[str, float], ...]]] = {
    Page.HOME: (("scroll", 2.774), ("hover", 1.547), ("category", 2.0), ("product", 0.8),
                ("search", 1.597), ("login", 8.071), ("content", 0.15), ("exit", 0.35)),
    Page.CATEGORY: (("scroll", 3.697), ("hover", 1.74), ("product", 2.4), ("filter", 0.4),
                    ("category", 0.4), ("search", 0.723), ("login", 0.97), ("home", 0.15),
                    ("exit", 0.5)),
    Page.PRODUCT: (("scroll", 2.774), ("hover", 1.74), ("add", 2.689), ("share", 0.44),
                   ("related", 0.9), ("category", 0.7), ("cart", 1.725), ("search", 0.614),
                   ("login", 0.834), ("exit", 0.7)),
    Page.SEARCH: (("scroll", 1.85), ("hover", 0.863), ("product", 2.0), ("search", 1.077),
                  ("category", 0.3), ("exit", 0.45)),
    Page.CART: (("checkout", 3.832), ("product", 0.4), ("home", 0.4), ("scroll", 0.925),
                ("login", 1.941), ("exit", 0.4)),
    Page.CHECKOUT: (("order", 3.662), ("cart", 0.383), ("exit", 0.3)),
    Page.CONTENT: (("scroll", 2.774), ("hover", 0.863), ("share", 0.607), ("home", 1.0),
                   ("exit", 0.6)),
}
# fmt: on
# (action names, cumulative weights, total): random.choices is too slow for the hot path.
_CHOICES: Final = {
    page: (
        tuple(a for a, _ in actions),
        list(accumulate(w for _, w in actions)),
        sum(w for _, w in actions),
    )
    for page, actions in _ACTIONS.items()
}
#: Share of navigations without a tracked click (back button, typed URL, swipe).
_CLICKLESS_NAVIGATION: Final = 0.45
_FILTERS: Final = (
    "filter-price",
    "filter-brand",
    "filter-rating",
    "sort-dropdown",
    "pagination-next",
)
_HOVER_TARGETS: Final = {
    Page.HOME: ("hero-banner", "nav-menu", "featured-product"),
    Page.CATEGORY: ("product-tile", "filter-price", "nav-menu"),
    Page.PRODUCT: ("product-image", "price-tag", "size-selector", "reviews"),
    Page.SEARCH: ("search-result", "search-suggestion"),
    Page.CART: ("cart-item", "promo-code"),
    Page.CHECKOUT: ("payment-options",),
    Page.CONTENT: ("nav-menu", "footer-links"),
}
_PRODUCT_ELEMENT: Final = {
    Page.HOME: "featured-product",
    Page.CATEGORY: "product-tile",
    Page.SEARCH: "search-result",
    Page.CART: "cart-item",
}


def think_ms(rng: random.Random, median_s: float, sigma: float = 0.8) -> int:
    """A human pause: log-normal, so mostly seconds with a tail of minutes."""
    # exp(gauss) is the log-normal at a third of lognormvariate's cost.
    return int(exp(rng.gauss(0.0, sigma)) * median_s * 1000) + 1


def _between(rng: random.Random, low_ms: int, high_ms: int) -> int:
    # randint costs 2.5x this and we call it for every click.
    return low_ms + int(rng.random() * (high_ms - low_ms))


def _pick(rng: random.Random, items: tuple[_T, ...] | list[_T]) -> _T:
    return items[int(rng.random() * len(items))]


class Session:
    """The state of one visit; :meth:`next_step` hands out its events one at a time."""

    def __init__(self, rng: random.Random, catalog: Catalog, visit: Visit, channel: str) -> None:
        self.visit = visit
        self._rng = rng
        self._catalog = catalog
        self._queue: deque[Step] = deque()
        self._page = Page.HOME
        self._location = HOME
        self._category: Category | None = None
        self._product: Product | None = None
        self._search_category: Category | None = None
        self._cart: list[Product] = []
        self._logged_in = False
        # Page budget: most visits are short, a few browse for long (exponential tail).
        self._pages_left = 3 + int(rng.expovariate(1 / 10))
        self._ended = False
        self._land(channel)

    def fork(self, visit: Visit) -> Session:
        """A session in this one's current state (page, cart, queued steps) as ``visit``.

        Used to start a simulation with sessions already under way. The fork
        shares the random generator and catalog; a user without an account
        is never logged in.
        """
        twin = copy.copy(self)
        twin.visit = visit
        twin._queue = deque(self._queue)
        twin._cart = list(self._cart)
        twin._logged_in = self._logged_in and visit.user.registered
        return twin

    def next_step(self) -> Step | None:
        """The next event of this session, or ``None`` once the user has left."""
        queue = self._queue
        while not queue:
            if self._ended or self._pages_left <= 0:
                return None
            names, cum, total = _CHOICES[self._page]
            _DISPATCH[names[bisect(cum, self._rng.random() * total)]](self)
        return queue.popleft()

    # -- building blocks ----------------------------------------------------------------------

    def _here(
        self,
        delay_ms: int,
        event_type: EventType,
        element: str | None = None,
        price: Decimal | None = None,
        query: str | None = None,
    ) -> None:
        self._queue.append(Step(delay_ms, event_type, self._location, element, price, query))

    def _view(
        self,
        delay_ms: int,
        location: Location,
        page: Page,
        *,
        category: Category | None = None,
        product: Product | None = None,
    ) -> None:
        self._location, self._page, self._pages_left = location, page, self._pages_left - 1
        self._product = product
        self._category = product.category if product else category
        self._queue.append(Step(delay_ms, _PV, location))

    def _navigate(
        self,
        element: str,
        read_s: float,
        location: Location,
        page: Page,
        *,
        category: Category | None = None,
        product: Product | None = None,
    ) -> None:
        rng = self._rng
        if rng.random() < _CLICKLESS_NAVIGATION:
            # Back button, swipe or typed URL: a page view without a tracked click.
            self._view(think_ms(rng, read_s), location, page, category=category, product=product)
            return
        self._here(think_ms(rng, read_s), _CLICK, element)
        self._view(_between(rng, 250, 1500), location, page, category=category, product=product)

    def _land(self, channel: str) -> None:
        """The first page: search and social deep-link to products, campaigns to categories."""
        rng, catalog = self._rng, self._catalog
        if channel == "social" or (channel == "search" and rng.random() < 0.6):
            product = catalog.popular_product(rng)
            self._view(0, product.location, Page.PRODUCT, product=product)
        elif channel == "search":
            category = _pick(rng, catalog.categories)
            self._view(0, category.location, Page.CATEGORY, category=category)
        elif channel == "campaign":
            location, category = catalog.campaign_landing(rng)
            self._view(0, location, Page.CATEGORY, category=category)
        else:
            self._view(0, HOME, Page.HOME)

    # -- actions ------------------------------------------------------------------------------

    def _do_scroll(self) -> None:
        self._here(think_ms(self._rng, 7.0), EventType.SCROLL)

    def _do_hover(self) -> None:
        rng = self._rng
        self._here(think_ms(rng, 3.0), EventType.HOVER, _pick(rng, _HOVER_TARGETS[self._page]))

    def _do_filter(self) -> None:
        self._here(think_ms(self._rng, 6.0), _CLICK, _pick(self._rng, _FILTERS))

    def _do_share(self) -> None:
        self._here(think_ms(self._rng, 10.0), EventType.SHARE, "btn-share")

    def _do_exit(self) -> None:
        self._ended = True

    def _do_category(self) -> None:
        category = _pick(self._rng, self._catalog.categories)
        self._navigate(
            f"nav-category-{category.slug}",
            10.0,
            category.location,
            Page.CATEGORY,
            category=category,
        )

    def _do_home(self) -> None:
        self._navigate("nav-logo", 8.0, HOME, Page.HOME)

    def _do_content(self) -> None:
        self._navigate("footer-link", 8.0, _pick(self._rng, CONTENT), Page.CONTENT)

    def _do_product(self) -> None:
        rng, catalog = self._rng, self._catalog
        if self._page is Page.CART and self._cart:
            product = _pick(rng, self._cart)
        elif self._page is Page.SEARCH and self._search_category is not None:
            product = catalog.product_in(rng, self._search_category)
        elif self._page is Page.CATEGORY and self._category is not None:
            product = catalog.product_in(rng, self._category)
        else:
            product = catalog.popular_product(rng)
        element = _PRODUCT_ELEMENT.get(self._page, "product-link")
        self._navigate(element, 12.0, product.location, Page.PRODUCT, product=product)

    def _do_related(self) -> None:
        assert self._product is not None  # only offered on product pages
        product = self._catalog.product_in(self._rng, self._product.category)
        self._navigate("related-product", 15.0, product.location, Page.PRODUCT, product=product)

    def _do_search(self) -> None:
        rng = self._rng
        query, location, category = self._catalog.search(rng)
        self._search_category = category
        # Typing the query, then the results page loads and records the search.
        self._view(think_ms(rng, 9.0), location, Page.SEARCH)
        self._here(_between(rng, 100, 600), EventType.SEARCH, query=query)

    def _do_add(self) -> None:
        product = self._product
        assert product is not None  # only offered on product pages
        self._here(think_ms(self._rng, 14.0), _CLICK, "btn-add-to-cart")
        self._here(_between(self._rng, 150, 600), EventType.ADD_TO_CART, price=product.price)
        self._cart.append(product)

    def _do_cart(self) -> None:
        if not self._cart:
            self._do_related() if self._page is Page.PRODUCT else self._do_home()
            return
        self._navigate("nav-cart", 8.0, CART, Page.CART)

    def _do_checkout(self) -> None:
        if not self._cart:
            self._do_home()
            return
        self._navigate("btn-checkout", 20.0, CHECKOUT, Page.CHECKOUT)

    def _do_login(self) -> None:
        if self._logged_in or not self.visit.user.registered:
            self._do_category()
            return
        back = (self._location, self._page, self._category, self._product)
        self._navigate("nav-account", 6.0, LOGIN, Page.CONTENT)
        self._here(think_ms(self._rng, 12.0), EventType.LOGIN)
        self._logged_in = True
        # The login form redirects to where the user came from.
        location, page, category, product = back
        self._view(
            _between(self._rng, 250, 1500), location, page, category=category, product=product
        )

    def _do_order(self) -> None:
        if not self._cart:
            self._do_home()
            return
        if not self._logged_in and self.visit.user.registered:
            self._do_login()
        total = sum((p.price for p in self._cart), Decimal("0.00"))
        self._here(think_ms(self._rng, 40.0), _CLICK, "btn-place-order")
        self._here(_between(self._rng, 800, 3000), EventType.PURCHASE, price=total)
        self._cart.clear()


_DISPATCH: Final[dict[str, Callable[[Session], None]]] = {
    name.removeprefix("_do_"): function
    for name, function in vars(Session).items()
    if name.startswith("_do_") and callable(function)
}
