"""Planted segments, product catalogue and the messy vocabularies.

Segment parameters are expressed per *week* of activity (or as fractions of the
simulated period) so that the separations survive a change of ``days``.  All
constants are plain data; nothing is computed at import time except building
small tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CATEGORIES",
    "CATEGORY_BASE_PRICE",
    "CITY_VARIANTS",
    "CONSENT_VARIANTS",
    "CONTACT_CHANNELS",
    "COUNTRY_VARIANTS",
    "DEVICE_VARIANTS",
    "DOMAINS",
    "EVENT_APP",
    "EVENT_WEB",
    "FIRST_NAMES",
    "GENDER_VARIANTS",
    "LAST_NAMES",
    "LOCATIONS",
    "MEDIUMS",
    "MEDIUM_VARIANTS",
    "SEGMENTS",
    "STATE_VARIANTS",
    "SUPPORT_TOPICS",
    "EventType",
    "SegmentSpec",
]


class EventType:
    """Integer codes of canonical event types (shared by web and app)."""

    PAGE_VIEW = 0  # web page_view / app screen_view
    PRODUCT_VIEW = 1
    ADD_TO_CART = 2
    REMOVE_FROM_CART = 3
    BEGIN_CHECKOUT = 4
    LOGIN = 5
    SEARCH = 6
    LANDING = 7  # web: page_view of the landing page; app: app_open
    N = 8


# Spellings per EventType code (index = code).  Web is deliberately messy.
EVENT_WEB: tuple[tuple[tuple[str, float], ...], ...] = (
    (("page_view", 0.7), ("Page View", 0.15), ("pageView", 0.15)),
    (("product_view", 0.75), ("Product View", 0.25)),
    (("add_to_cart", 0.75), ("Add To Cart", 0.25)),
    (("remove_from_cart", 1.0),),
    (("begin_checkout", 1.0),),
    (("login", 1.0),),
    (("search", 1.0),),
    (("page_view", 0.7), ("Page View", 0.15), ("pageView", 0.15)),
)
EVENT_APP: tuple[tuple[tuple[str, float], ...], ...] = (
    (("screen_view", 1.0),),
    (("product_view", 1.0),),
    (("add_to_cart", 1.0),),
    (("remove_from_cart", 1.0),),
    (("begin_checkout", 1.0),),
    (("login", 1.0),),
    (("search", 1.0),),
    (("app_open", 1.0),),
)

MEDIUMS: tuple[str, ...] = ("organic", "paid_search", "email", "social", "direct", "referral")
MEDIUM_VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("organic", 0.5), ("Organic", 0.35), ("ORGANIC", 0.15)),
    (("paid_search", 0.55), ("Paid Search", 0.35), ("paid-search", 0.1)),
    (("email", 0.6), ("Email", 0.3), ("e-mail", 0.1)),
    (("social", 0.65), ("Social", 0.35)),
    (("direct", 0.6), ("Direct", 0.25), ("(direct)", 0.15)),
    (("referral", 0.7), ("Referral", 0.3)),
)

DEVICE_VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("desktop", 0.6), ("Desktop", 0.3), ("DESKTOP", 0.1)),
    (("mobile", 0.6), ("Mobile", 0.3), ("MOBILE", 0.1)),
    (("tablet", 0.7), ("Tablet", 0.3)),
)
DEVICE_WEIGHTS: tuple[float, float, float] = (0.45, 0.45, 0.10)

# Countries: 0 US, 1 Canada, 2 United Kingdom, 3 Germany.
COUNTRY_VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("US", 0.4), ("USA", 0.25), ("United States", 0.25), ("u.s.a.", 0.1)),
    (("Canada", 0.8), ("canada", 0.2)),
    (("GB", 0.45), ("United Kingdom", 0.45), ("UK", 0.1)),
    (("DE", 0.5), ("Germany", 0.4), ("germany", 0.1)),
)
# US states: 0 NY, 1 CA, 2 TX, 3 IL, 4 WA, 5 FL, 6 MA.
STATE_VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("NY", 0.4), ("N.Y.", 0.15), ("new york", 0.2), ("New York", 0.25)),
    (("CA", 0.5), ("California", 0.35), ("ca", 0.15)),
    (("TX", 0.5), ("Texas", 0.35), ("tx", 0.15)),
    (("IL", 0.6), ("Illinois", 0.4)),
    (("WA", 0.55), ("Washington", 0.3), ("wa", 0.15)),
    (("FL", 0.5), ("Florida", 0.35), ("Fla.", 0.15)),
    (("MA", 0.5), ("Massachusetts", 0.3), ("Mass.", 0.2)),
)
CITY_VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("New York", 0.6), ("new york", 0.25), ("NYC", 0.15)),  # 0
    (("Brooklyn", 0.8), ("brooklyn", 0.2)),  # 1
    (("Los Angeles", 0.7), ("los angeles", 0.2), ("L.A.", 0.1)),  # 2
    (("San Francisco", 0.7), ("san francisco", 0.2), ("San Fran", 0.1)),  # 3
    (("Houston", 0.8), ("houston", 0.2)),  # 4
    (("Austin", 0.8), ("austin", 0.2)),  # 5
    (("Chicago", 0.7), ("chicago", 0.2), ("CHICAGO", 0.1)),  # 6
    (("Seattle", 0.8), ("seattle", 0.2)),  # 7
    (("Miami", 0.8), ("miami", 0.2)),  # 8
    (("Boston", 0.8), ("boston", 0.2)),  # 9
    (("Toronto", 0.8), ("toronto", 0.2)),  # 10
    (("Vancouver", 1.0),),  # 11
    (("London", 0.8), ("london", 0.2)),  # 12
    (("Manchester", 1.0),),  # 13
    (("Berlin", 0.8), ("berlin", 0.2)),  # 14
    (("Munich", 0.6), ("München", 0.3), ("munich", 0.1)),  # 15
)
# (country, state or -1, city, weight)
LOCATIONS: tuple[tuple[int, int, int, float], ...] = (
    (0, 0, 0, 0.16), (0, 0, 1, 0.06), (0, 1, 2, 0.13), (0, 1, 3, 0.08),
    (0, 2, 4, 0.08), (0, 2, 5, 0.06), (0, 3, 6, 0.08), (0, 4, 7, 0.06),
    (0, 5, 8, 0.06), (0, 6, 9, 0.06), (1, -1, 10, 0.04), (1, -1, 11, 0.02),
    (2, -1, 12, 0.03), (2, -1, 13, 0.01), (3, -1, 14, 0.02), (3, -1, 15, 0.01),
)

GENDER_VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("F", 0.45), ("female", 0.25), ("Female", 0.2), ("f", 0.1)),
    (("M", 0.45), ("male", 0.25), ("Male", 0.2), ("m", 0.1)),
    (("X", 0.5), ("non-binary", 0.3), ("other", 0.2)),
)
GENDER_WEIGHTS: tuple[float, float, float] = (0.5, 0.47, 0.03)

# code 0 = granted, 1 = denied; variant index k pairs the spellings.
CONSENT_VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("yes", 1.0), ("true", 1.0), ("1", 1.0), ("granted", 1.0)),
    (("no", 1.0), ("false", 1.0), ("0", 1.0), ("denied", 1.0)),
)

CONTACT_CHANNELS: tuple[str, ...] = ("email", "phone", "chat", "app")
SUPPORT_TOPICS: tuple[str, ...] = (
    "delivery", "returns", "billing", "account", "product_question", "app_issue",
)

CATEGORIES: tuple[str, ...] = (
    "electronics", "home_kitchen", "fashion", "beauty", "sports_outdoors", "toys_games",
    "books", "grocery", "garden", "pet_supplies", "office", "automotive",
)
CATEGORY_BASE_PRICE: tuple[float, ...] = (
    20.0, 12.0, 14.0, 7.0, 15.0, 9.0, 5.0, 3.0, 10.0, 6.0, 5.0, 12.0,
)
PRODUCTS_PER_CATEGORY = 400

FIRST_NAMES: tuple[str, ...] = (
    "james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda",
    "william", "elizabeth", "david", "barbara", "richard", "susan", "joseph", "jessica",
    "thomas", "sarah", "charles", "karen", "daniel", "nancy", "matthew", "lisa",
    "anthony", "betty", "mark", "sandra", "steven", "ashley", "andrew", "emily",
    "joshua", "michelle", "kevin", "amanda", "brian", "melissa", "noah", "olivia",
)
LAST_NAMES: tuple[str, ...] = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
    "rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson",
    "thomas", "taylor", "moore", "jackson", "martin", "lee", "perez", "thompson",
    "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson", "walker",
    "young", "allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores",
)
DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net", "mail.example.com")


@dataclass(frozen=True)
class SegmentSpec:
    """Behavioural parameters of one planted segment.

    Times are fractions of the simulated period; rates are per active week.
    ``(lo, hi)`` pairs are uniform ranges drawn per customer.
    """

    name: str
    share: float
    start_frac: tuple[float, float]  # first possible activity
    end_frac: tuple[float, float]  # last possible activity
    sessions_per_week: float
    browse_events: float  # mean browsing events per session (incl. landing)
    dwell_s: float  # mean seconds between consecutive events
    p_product: float  # share of browse events that are product views
    p_search: float
    p_convert: float  # session ends in checkout + order
    p_cart: float  # non-converting session still adds to cart
    p_remove: float
    p_login: float  # extra (non-required) login per web session
    p_app: float  # customer has the app installed
    app_share: float  # share of sessions in the app for app users
    store_per_week: float
    support_per_week: float
    min_support: int
    categories: tuple[int, int]  # number of preferred categories (inclusive)
    price_tier: tuple[float, float]  # position within category price ladder
    lines: tuple[float, float, float]  # probability of 1, 2, 3 order lines
    extra_qty: float  # Poisson mean of quantity - 1
    discount: float  # mean fractional discount on order lines
    max_orders: int  # -1 = unlimited
    signup_days_before: tuple[float, float]  # signup before first activity
    mediums: tuple[float, ...] = field(default=(0.3, 0.2, 0.15, 0.1, 0.15, 0.1))
    active_to_end_days: float = 0.0  # > 0: last session within this many days of the end
    active_from_start_days: float = 0.0  # > 0: first session within this many days of start
    min_sessions: int = 1


SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(
        name="loyal_high_spenders", share=0.14,
        start_frac=(0.0, 0.05), end_frac=(0.97, 1.0),
        sessions_per_week=0.38, browse_events=3.0, dwell_s=40.0,
        p_product=0.5, p_search=0.1, p_convert=0.8, p_cart=0.04, p_remove=0.1, p_login=0.5,
        p_app=0.4, app_share=0.35, store_per_week=0.08, support_per_week=0.01, min_support=0,
        categories=(2, 4), price_tier=(0.62, 1.0), lines=(0.35, 0.35, 0.3), extra_qty=0.2,
        discount=0.0, max_orders=-1, signup_days_before=(90.0, 1100.0),
        mediums=(0.15, 0.05, 0.3, 0.05, 0.4, 0.05),
        active_to_end_days=4.0, active_from_start_days=5.0,
        min_sessions=4,
    ),
    SegmentSpec(
        name="bargain_hunters", share=0.18,
        start_frac=(0.0, 0.2), end_frac=(0.88, 1.0),
        sessions_per_week=0.32, browse_events=7.5, dwell_s=60.0,
        p_product=0.75, p_search=0.15, p_convert=0.42, p_cart=0.55, p_remove=0.35, p_login=0.4,
        p_app=0.25, app_share=0.3, store_per_week=0.04, support_per_week=0.01, min_support=0,
        categories=(3, 6), price_tier=(0.0, 0.15), lines=(0.35, 0.35, 0.3), extra_qty=0.5,
        discount=0.2, max_orders=-1, signup_days_before=(0.0, 700.0),
        mediums=(0.15, 0.3, 0.35, 0.1, 0.05, 0.05),
        min_sessions=3,
    ),
    SegmentSpec(
        name="window_shoppers", share=0.22,
        start_frac=(0.0, 0.3), end_frac=(0.8, 1.0),
        sessions_per_week=0.3, browse_events=4.0, dwell_s=200.0,
        p_product=0.65, p_search=0.15, p_convert=0.008, p_cart=0.75, p_remove=0.25, p_login=0.4,
        p_app=0.0, app_share=0.0, store_per_week=0.0, support_per_week=0.004, min_support=0,
        categories=(2, 5), price_tier=(0.2, 0.9), lines=(0.7, 0.2, 0.1), extra_qty=0.1,
        discount=0.0, max_orders=-1, signup_days_before=(0.0, 500.0),
        mediums=(0.4, 0.1, 0.05, 0.3, 0.1, 0.05),
        min_sessions=3,
    ),
    SegmentSpec(
        name="new_explorers", share=0.18,
        start_frac=(0.82, 0.92), end_frac=(0.985, 1.0),
        sessions_per_week=0.9, browse_events=4.0, dwell_s=55.0,
        p_product=0.45, p_search=0.25, p_convert=0.6, p_cart=0.35, p_remove=0.1, p_login=0.3,
        p_app=0.0, app_share=0.0, store_per_week=0.0, support_per_week=0.01, min_support=0,
        categories=(6, 9), price_tier=(0.2, 0.8), lines=(0.7, 0.2, 0.1), extra_qty=0.1,
        discount=0.0, max_orders=1, signup_days_before=(0.0, 2.0),
        mediums=(0.25, 0.35, 0.02, 0.3, 0.03, 0.05),
        min_sessions=2,
    ),
    SegmentSpec(
        name="lapsing_buyers", share=0.18,
        start_frac=(0.0, 0.08), end_frac=(0.4, 0.55),
        sessions_per_week=0.55, browse_events=3.0, dwell_s=40.0,
        p_product=0.5, p_search=0.1, p_convert=0.55, p_cart=0.15, p_remove=0.1, p_login=0.5,
        p_app=0.2, app_share=0.3, store_per_week=0.1, support_per_week=0.02, min_support=0,
        categories=(1, 3), price_tier=(0.3, 0.7), lines=(0.5, 0.3, 0.2), extra_qty=0.3,
        discount=0.05, max_orders=-1, signup_days_before=(30.0, 900.0),
        mediums=(0.25, 0.15, 0.25, 0.1, 0.2, 0.05), active_from_start_days=10.0,
        min_sessions=3,
    ),
    SegmentSpec(
        name="support_heavy", share=0.10,
        start_frac=(0.0, 0.15), end_frac=(0.9, 1.0),
        sessions_per_week=0.35, browse_events=4.0, dwell_s=60.0,
        p_product=0.45, p_search=0.2, p_convert=0.3, p_cart=0.3, p_remove=0.2, p_login=0.3,
        p_app=1.0, app_share=0.85, store_per_week=0.02, support_per_week=0.35, min_support=4,
        categories=(1, 3), price_tier=(0.3, 0.8), lines=(0.6, 0.3, 0.1), extra_qty=0.2,
        discount=0.0, max_orders=-1, signup_days_before=(0.0, 800.0),
        mediums=(0.2, 0.1, 0.2, 0.1, 0.35, 0.05),
        min_sessions=3,
    ),
)
