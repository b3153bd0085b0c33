"""Customer-level draws: segment membership, activity windows and traits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tribes.synth import model
from tribes.synth.model import SEGMENTS

__all__ = [
    "Catalog", "Customers", "assign_segments", "build_catalog", "draw_customers", "draw_products",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

WEEK = 7 * 86400.0
SESSION_SPACING = 3 * 3600  # minimum gap between session starts of one customer
TAIL = 3 * 3600  # keep the last session start this far from the period end


@dataclass(frozen=True)
class Catalog:
    """Products with category and unit price (grouped by category, cheap first)."""

    product_code: I64  # numeric part of the product id, unique
    category: I64
    price: F64
    per_category: int

    @property
    def n_categories(self) -> int:
        """Number of categories."""
        return len(model.CATEGORIES)


def build_catalog(seed: int) -> Catalog:
    """Draw the product catalogue.

    Parameters
    ----------
    seed : int
        Master seed of the run.

    Returns
    -------
    Catalog
        ``len(CATEGORIES) * PRODUCTS_PER_CATEGORY`` products.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA7]))
    per = model.PRODUCTS_PER_CATEGORY
    n_cat = len(model.CATEGORIES)
    cat = np.repeat(np.arange(n_cat, dtype=np.int64), per)
    q = np.tile(np.arange(per, dtype=np.float64) / per, n_cat)
    base = np.asarray(model.CATEGORY_BASE_PRICE)[cat]
    raw = base * np.exp(3.0 * q) * rng.uniform(0.92, 1.08, cat.size)
    price = np.floor(raw) + 0.99
    code = rng.permutation(900_000)[: cat.size].astype(np.int64) + 100_000
    return Catalog(product_code=code, category=cat, price=price, per_category=per)


def assign_segments(customers: int, seed: int) -> NDArray[np.int8]:
    """Assign each customer (by global index) to a planted segment.

    Segment sizes are exact shares of ``customers`` (largest remainder).

    Parameters
    ----------
    customers : int
        Number of customers.
    seed : int
        Master seed of the run.

    Returns
    -------
    ndarray of int8
        Segment code (index into :data:`SEGMENTS`) per customer.
    """
    shares = np.array([s.share for s in SEGMENTS], dtype=np.float64)
    shares = shares / shares.sum()
    exact = shares * customers
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: customers - counts.sum()]] += 1
    labels = np.repeat(np.arange(len(SEGMENTS), dtype=np.int8), counts)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E6]))
    return rng.permutation(labels)


def _param(name: str, seg: NDArray[np.int8]) -> F64:
    return np.asarray([float(getattr(s, name)) for s in SEGMENTS], dtype=np.float64)[seg]


def _pair(name: str, seg: NDArray[np.int8], rng: np.random.Generator) -> F64:
    lo = np.asarray([getattr(s, name)[0] for s in SEGMENTS], dtype=np.float64)[seg]
    hi = np.asarray([getattr(s, name)[1] for s in SEGMENTS], dtype=np.float64)[seg]
    return lo + (hi - lo) * rng.random(seg.size)


def _noisy_p(name: str, seg: NDArray[np.int8], rng: np.random.Generator) -> F64:
    p = _param(name, seg) * rng.lognormal(0.0, 0.15, seg.size)
    return np.clip(p, 0.0, 0.97)


@dataclass(frozen=True)
class Customers:
    """Per-customer parameters of one chunk (times in seconds from period start)."""

    gidx: I64
    seg: NDArray[np.int8]
    a: F64
    b: F64
    n_sess: I64
    end_anchor: F64  # seconds; > 0 pins the last session into [b - end_anchor, b]
    start_anchor: F64  # seconds; > 0 pins the first session into [a, a + start_anchor]
    browse_mean: F64
    dwell: F64
    p_product: F64
    p_search: F64
    p_convert: F64
    p_cart: F64
    p_remove: F64
    p_login: F64
    app_share: F64
    n_inst: I64
    reinstall_t: F64
    platform: I64  # (n, 2): 0 ios, 1 android per install slot
    n_dev: I64
    dev_type: I64  # (n, 3) device type code per device slot
    churn_t: F64
    cat_perm: I64  # (n, n_categories) preferred categories first
    n_cats: I64
    tier_lo: F64
    tier_hi: F64
    lines_cum: F64  # (n, 2) cumulative probability of 1, 2 lines
    extra_qty: F64
    discount: F64
    max_orders: I64
    medium_cum: F64  # (n, n_mediums - 1)
    n_store: I64
    n_support: I64
    signup: F64
    loc: I64
    age: I64  # -1 = missing
    gender: I64  # -1 = missing
    first_name: I64
    last_name: I64
    domain: I64

    @property
    def n(self) -> int:
        """Number of customers in the chunk."""
        return int(self.gidx.size)


def draw_customers(
    gidx: I64, seg: NDArray[np.int8], period_s: float, rng: np.random.Generator
) -> Customers:
    """Draw all customer-level parameters of one chunk.

    Parameters
    ----------
    gidx : ndarray of int64
        Global customer indices (0-based) of the chunk.
    seg : ndarray of int8
        Segment code per customer.
    period_s : float
        Length of the simulated period in seconds.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    Customers
        Parameters used by the session and event generators.
    """
    n = gidx.size
    a = _pair("start_frac", seg, rng) * period_s
    b = np.minimum(_pair("end_frac", seg, rng) * period_s, period_s - TAIL)
    a = np.clip(a, 0.0, b - 6 * 3600.0)
    weeks = (b - a) / WEEK

    lam = _param("sessions_per_week", seg) * weeks * rng.lognormal(0.0, 0.3, n)
    n_sess = np.maximum(rng.poisson(lam), _param("min_sessions", seg).astype(np.int64))
    n_max = 1 + np.floor((b - a - 3600.0) / SESSION_SPACING).astype(np.int64)
    n_sess = np.minimum(np.minimum(n_sess, n_max), 400).astype(np.int64)

    n_store = rng.poisson(_param("store_per_week", seg) * weeks).astype(np.int64)
    sup = _param("support_per_week", seg) * weeks * rng.lognormal(0.0, 0.3, n)
    n_support = np.maximum(rng.poisson(sup), _param("min_support", seg).astype(np.int64))
    n_support = np.minimum(n_support, 99).astype(np.int64)

    has_app = rng.random(n) < _param("p_app", seg)
    n_inst = np.where(has_app, 1 + (rng.random(n) < 0.2), 0).astype(np.int64)
    reinstall_t = np.where(n_inst == 2, a + (b - a) * rng.random(n), np.inf)
    churn_t = np.where(rng.random(n) < 0.25, a + (b - a) * rng.random(n), np.inf)

    n_cat = len(model.CATEGORIES)
    cat_perm = np.argsort(rng.random((n, n_cat)), axis=1).astype(np.int64)
    lo = np.asarray([s.categories[0] for s in SEGMENTS])[seg]
    hi = np.asarray([s.categories[1] for s in SEGMENTS])[seg]
    n_cats = rng.integers(lo, hi + 1).astype(np.int64)
    tiers = np.asarray([s.price_tier for s in SEGMENTS], dtype=np.float64)[seg]

    lines = np.asarray([s.lines for s in SEGMENTS], dtype=np.float64)
    lines_cum = np.cumsum(lines / lines.sum(axis=1, keepdims=True), axis=1)[:, :2][seg]
    med = np.asarray([s.mediums for s in SEGMENTS], dtype=np.float64)
    medium_cum = np.cumsum(med / med.sum(axis=1, keepdims=True), axis=1)[:, :-1][seg]

    signup = a - _pair("signup_days_before", seg, rng) * 86400.0 - rng.random(n) * 3600.0
    loc_w = np.asarray([w for *_, w in model.LOCATIONS], dtype=np.float64)
    loc = rng.choice(loc_w.size, size=n, p=loc_w / loc_w.sum()).astype(np.int64)
    age = np.clip(np.round(rng.normal(41.0, 13.0, n)), 18, 85).astype(np.int64)
    gw = np.asarray(model.GENDER_WEIGHTS)
    gender = rng.choice(gw.size, size=n, p=gw / gw.sum()).astype(np.int64)
    dw = np.asarray(model.DEVICE_WEIGHTS)

    return Customers(
        gidx=gidx.astype(np.int64),
        seg=seg,
        a=a,
        b=b,
        n_sess=n_sess,
        end_anchor=_param("active_to_end_days", seg) * 86400.0,
        start_anchor=_param("active_from_start_days", seg) * 86400.0,
        browse_mean=_param("browse_events", seg) * rng.lognormal(0.0, 0.2, n),
        dwell=_param("dwell_s", seg) * rng.lognormal(0.0, 0.25, n),
        p_product=_param("p_product", seg),
        p_search=_param("p_search", seg),
        p_convert=_noisy_p("p_convert", seg, rng),
        p_cart=_noisy_p("p_cart", seg, rng),
        p_remove=_param("p_remove", seg),
        p_login=_param("p_login", seg),
        app_share=_param("app_share", seg),
        n_inst=n_inst,
        reinstall_t=reinstall_t,
        platform=(rng.random((n, 2)) < 0.45).astype(np.int64),
        n_dev=rng.choice(3, size=n, p=[0.5, 0.35, 0.15]).astype(np.int64) + 1,
        dev_type=rng.choice(3, size=(n, 3), p=dw / dw.sum()).astype(np.int64),
        churn_t=churn_t,
        cat_perm=cat_perm,
        n_cats=n_cats,
        tier_lo=tiers[:, 0],
        tier_hi=tiers[:, 1],
        lines_cum=lines_cum,
        extra_qty=_param("extra_qty", seg),
        discount=_param("discount", seg),
        max_orders=_param("max_orders", seg).astype(np.int64),
        medium_cum=medium_cum,
        n_store=n_store,
        n_support=n_support,
        signup=signup,
        loc=loc,
        age=np.where(rng.random(n) < 0.07, -1, age),
        gender=np.where(rng.random(n) < 0.07, -1, gender),
        first_name=rng.integers(0, len(model.FIRST_NAMES), n).astype(np.int64),
        last_name=rng.integers(0, len(model.LAST_NAMES), n).astype(np.int64),
        domain=rng.integers(0, len(model.DOMAINS), n).astype(np.int64),
    )


def draw_products(
    cust: I64, c: Customers, catalog: Catalog, rng: np.random.Generator
) -> I64:
    """Draw products (catalogue indices) matching each customer's taste.

    Parameters
    ----------
    cust : ndarray of int64
        Local customer index per draw.
    c : Customers
        Chunk customers.
    catalog : Catalog
        Product catalogue.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    ndarray of int64
        Catalogue index per draw.
    """
    j = np.floor(rng.random(cust.size) ** 1.5 * c.n_cats[cust]).astype(np.int64)
    cat = c.cat_perm[cust, j]
    q = c.tier_lo[cust] + (c.tier_hi[cust] - c.tier_lo[cust]) * rng.random(cust.size)
    pos = np.minimum((q * catalog.per_category).astype(np.int64), catalog.per_category - 1)
    return cat * catalog.per_category + pos
