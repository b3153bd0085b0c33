"""Session and event simulation (numeric, before any text formatting).

A customer's sessions are spread over their activity window with a diurnal
profile and at least :data:`SESSION_SPACING` between starts, so that the
30-minute sessionisation of later stages recovers them exactly.  Each session
consists of browsing events plus optional login / cart / checkout events which
are merged in by an integer *rank* (10 per browsing step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tribes.synth.model import EventType
from tribes.synth.population import SESSION_SPACING, Catalog, Customers, draw_products

__all__ = ["Events", "Sessions", "draw_events", "draw_sessions", "expand_counts"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

MAX_BROWSE = 40
MAX_GAP_S = 840.0  # two consecutive gaps stay below 30 minutes
MAX_SESSION_S = 7200.0
NO_RANK = 1 << 20
# Relative session-start likelihood per UTC hour.
HOURLY = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.4, 2.0, 2.4, 2.6, 2.7,
     2.9, 2.9, 2.8, 2.8, 2.9, 3.1, 3.5, 3.9, 4.0, 3.5, 2.6, 1.7],
    dtype=np.float64,
)
# Page codes of page views: home, deals, account, help, category page.
PAGE_HOME, PAGE_DEALS, PAGE_ACCOUNT, PAGE_HELP, PAGE_CATEGORY = range(5)
PAGE_WEIGHTS = np.array([0.25, 0.12, 0.1, 0.03, 0.5])
LANDING_WEIGHTS = np.array([0.5, 0.2, 0.0, 0.0, 0.3])


@dataclass(frozen=True)
class Sessions:
    """One row per session, grouped by customer and ordered by start time."""

    cust: I64
    start: I64  # seconds from period start
    is_app: B
    slot: I64  # web: cookie slot 0..5, app: install slot 0..1
    first_of_id: B  # first session on this cookie / install
    checkout: B
    cart: B
    remove: B
    login: B
    n_browse: I64
    medium: I64  # -1 for app sessions
    cart_product: I64  # -1 without cart
    login_rank: I64  # NO_RANK without login

    @property
    def n(self) -> int:
        """Number of sessions."""
        return int(self.cust.size)


@dataclass(frozen=True)
class Events:
    """One row per event, ordered by session then time."""

    sess: I64
    cust: I64
    t: F64  # seconds from period start (fractional)
    etype: I64
    product: I64  # catalogue index or -1
    category: I64  # category code or -1
    page: I64  # page code for landing / page views, else -1
    logged: B  # user id known on this row

    @property
    def n(self) -> int:
        """Number of events."""
        return int(self.sess.size)


def expand_counts(counts: I64) -> tuple[I64, I64]:
    """Lay out ``counts[i]`` rows per owner ``i`` (the ``np.repeat`` layout).

    Parameters
    ----------
    counts : ndarray of int64
        Number of rows per owner.

    Returns
    -------
    ndarray of int64
        Owner index of each row (ascending).
    ndarray of int64
        Position of each row within its owner (0, 1, ...).
    """
    owner = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(owner.size, dtype=np.int64) - starts[owner]


def _session_starts(c: Customers, cust: I64, k: I64, rng: np.random.Generator) -> I64:
    """Sorted, spaced session start times inside each customer's window."""
    eff = c.b - c.a - (c.n_sess - 1) * SESSION_SPACING
    lo = c.a[cust]
    span = eff[cust]
    u = lo + rng.random(cust.size) * span
    hour = rng.choice(24, size=cust.size, p=HOURLY / HOURLY.sum())
    diurnal = np.floor(u / 86400.0) * 86400.0 + hour * 3600.0 + rng.random(cust.size) * 3600.0
    u = np.where((diurnal >= lo) & (diurnal <= lo + span), diurnal, u)
    shift = np.int64(1) << np.int64(34)
    key = np.sort(cust * shift + np.floor(u).astype(np.int64))
    t: I64 = (key - cust * shift).astype(np.int64)
    # Enforce the minimum spacing with a per-customer running maximum.
    big = np.int64(1) << np.int64(40)
    v = t - k * SESSION_SPACING + cust * big
    t = (np.maximum.accumulate(v) - cust * big + k * SESSION_SPACING).astype(np.int64)
    # Some segments are pinned to be active right from their start / to their end;
    # moving the first session earlier or the last later keeps order and spacing.
    last = np.cumsum(c.n_sess) - 1
    first = last - c.n_sess + 1
    pin = np.flatnonzero(c.start_anchor > 0)
    early = np.floor(c.a[pin] + rng.random(pin.size) * c.start_anchor[pin]).astype(np.int64)
    t[first[pin]] = np.minimum(t[first[pin]], early)
    pin = np.flatnonzero(c.end_anchor > 0)
    late = np.floor(c.b[pin] - rng.random(pin.size) * c.end_anchor[pin]).astype(np.int64)
    t[last[pin]] = np.maximum(t[last[pin]], late)
    return t


def draw_sessions(c: Customers, catalog: Catalog, rng: np.random.Generator) -> Sessions:
    """Simulate the sessions of a chunk of customers.

    Parameters
    ----------
    c : Customers
        Chunk customers.
    catalog : Catalog
        Product catalogue (for cart products).
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    Sessions
        Session table of the chunk.
    """
    cust, k = expand_counts(c.n_sess)
    s = cust.size
    start = _session_starts(c, cust, k, rng)
    tf = start.astype(np.float64)

    is_app = (c.n_inst[cust] > 0) & (rng.random(s) < c.app_share[cust])
    dev = np.floor(rng.random(s) * c.n_dev[cust]).astype(np.int64)
    web_slot = dev + 3 * (tf > c.churn_t[cust])
    inst = ((c.n_inst[cust] == 2) & (tf > c.reinstall_t[cust])).astype(np.int64)
    slot = np.where(is_app, inst, web_slot)
    id_key = cust * 16 + np.where(is_app, 8 + inst, web_slot)
    first_of_id = np.zeros(s, dtype=np.bool_)
    first_of_id[np.unique(id_key, return_index=True)[1]] = True

    checkout = rng.random(s) < c.p_convert[cust]
    csum = np.cumsum(checkout)
    cstart = np.cumsum(c.n_sess) - c.n_sess
    nth = csum - (csum[cstart] - checkout[cstart])[cust]  # every customer has >= 1 session
    limit = c.max_orders[cust]
    checkout &= (limit < 0) | (nth <= limit)
    cart = checkout | (rng.random(s) < c.p_cart[cust])
    remove = cart & ~checkout & (rng.random(s) < c.p_remove[cust])
    extra_login = rng.random(s) < c.p_login[cust]
    login = np.where(is_app, first_of_id, first_of_id | checkout | extra_login)

    n_browse = 1 + rng.poisson(np.maximum(c.browse_mean[cust] - 1.0, 0.0))
    n_browse = np.minimum(n_browse, MAX_BROWSE).astype(np.int64)
    medium = (rng.random(s)[:, None] >= c.medium_cum[cust]).sum(axis=1).astype(np.int64)
    medium = np.where(is_app, -1, medium)
    cart_product = np.full(s, -1, dtype=np.int64)
    cart_idx = np.flatnonzero(cart)
    cart_product[cart_idx] = draw_products(cust[cart_idx], c, catalog, rng)
    login_step = np.floor(rng.random(s) * n_browse).astype(np.int64)
    login_rank = np.where(login, 5 + 10 * login_step, NO_RANK)
    return Sessions(
        cust=cust, start=start, is_app=is_app, slot=slot, first_of_id=first_of_id,
        checkout=checkout, cart=cart, remove=remove, login=login, n_browse=n_browse,
        medium=medium, cart_product=cart_product, login_rank=login_rank,
    )


def draw_events(
    c: Customers, s: Sessions, catalog: Catalog, rng: np.random.Generator
) -> Events:
    """Expand sessions into ordered, timestamped events.

    Parameters
    ----------
    c : Customers
        Chunk customers.
    s : Sessions
        Chunk sessions.
    catalog : Catalog
        Product catalogue.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    Events
        Events ordered by session, then time.
    """
    # Browsing events: landing page first, then views / searches.
    b_sess, j = expand_counts(s.n_browse)
    b_cust = s.cust[b_sess]
    u = rng.random(b_sess.size)
    p_prod = c.p_product[b_cust]
    b_type = np.where(
        u < p_prod, EventType.PRODUCT_VIEW,
        np.where(u < p_prod + c.p_search[b_cust], EventType.SEARCH, EventType.PAGE_VIEW),
    )
    b_type = np.where(j == 0, EventType.LANDING, b_type).astype(np.int64)

    lg = np.flatnonzero(s.login)
    ct = np.flatnonzero(s.cart)
    rm = np.flatnonzero(s.remove)
    co = np.flatnonzero(s.checkout)
    cart_rank = 7 + 10 * np.floor(rng.random(ct.size) * s.n_browse[ct]).astype(np.int64)
    sess = np.concatenate([b_sess, lg, ct, ct, rm, co])
    rank = np.concatenate([
        10 * j, s.login_rank[lg], cart_rank, cart_rank + 1,
        10 * s.n_browse[rm] + 2, 10 * s.n_browse[co] + 5,
    ])
    etype = np.concatenate([
        b_type,
        np.full(lg.size, EventType.LOGIN, dtype=np.int64),
        np.full(ct.size, EventType.PRODUCT_VIEW, dtype=np.int64),
        np.full(ct.size, EventType.ADD_TO_CART, dtype=np.int64),
        np.full(rm.size, EventType.REMOVE_FROM_CART, dtype=np.int64),
        np.full(co.size, EventType.BEGIN_CHECKOUT, dtype=np.int64),
    ])
    product = np.concatenate([
        np.full(b_sess.size, -1, dtype=np.int64),
        np.full(lg.size, -1, dtype=np.int64),
        s.cart_product[ct], s.cart_product[ct], s.cart_product[rm],
        np.full(co.size, -1, dtype=np.int64),
    ])
    order = np.argsort(sess * 1024 + rank, kind="stable")
    sess, rank, etype, product = sess[order], rank[order], etype[order], product[order]
    cust = s.cust[sess]
    n = sess.size

    # Products for plain product views, categories for searches / category pages.
    pv = np.flatnonzero((etype == EventType.PRODUCT_VIEW) & (product < 0))
    product[pv] = draw_products(cust[pv], c, catalog, rng)
    page = np.full(n, -1, dtype=np.int64)
    is_page = (etype == EventType.PAGE_VIEW) | (etype == EventType.LANDING)
    pw = np.where(etype == EventType.LANDING, 1, 0)
    cum_page = np.cumsum(np.vstack([PAGE_WEIGHTS, LANDING_WEIGHTS]), axis=1)[:, :-1]
    page_draw = (rng.random(n)[:, None] >= cum_page[pw]).sum(axis=1)
    page = np.where(is_page, page_draw, page).astype(np.int64)
    category = np.where(product >= 0, catalog.category[np.maximum(product, 0)], -1)
    needs_cat = (etype == EventType.SEARCH) | (page == PAGE_CATEGORY)
    jj = np.floor(rng.random(n) ** 1.5 * c.n_cats[cust]).astype(np.int64)
    category = np.where(needs_cat, c.cat_perm[cust, jj], category).astype(np.int64)

    # Timing: exponential gaps, capped, and whole sessions capped at 2 h.
    first = np.ones(n, dtype=np.bool_)
    first[1:] = sess[1:] != sess[:-1]
    gap = np.clip(rng.exponential(1.0, n) * c.dwell[cust], 1.0, MAX_GAP_S)
    gap[first] = 0.0
    csum = np.cumsum(gap)
    first_idx = np.flatnonzero(first)  # every session has >= 1 event, in order
    within = csum - np.repeat(csum[first_idx], np.diff(np.append(first_idx, n)))
    total = within[np.append(first_idx[1:] - 1, n - 1)]
    scale = np.minimum(1.0, MAX_SESSION_S / np.maximum(total, 1.0))
    t = s.start[sess] + within * scale[sess]

    logged = np.where(
        s.is_app[sess],
        ~s.first_of_id[sess] | (rank >= s.login_rank[sess]),
        rank >= s.login_rank[sess],
    )
    return Events(
        sess=sess, cust=cust, t=t, etype=etype, product=product,
        category=category, page=page, logged=logged,
    )
