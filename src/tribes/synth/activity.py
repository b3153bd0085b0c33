"""Orders (online and in store), support contacts and consent records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tribes.synth.model import EventType
from tribes.synth.population import Catalog, Customers, draw_products
from tribes.synth.sessions import Events, Sessions, expand_counts

__all__ = [
    "CHANNEL_APP", "CHANNEL_STORE", "CHANNEL_WEB", "Consents", "Lines", "Tickets",
    "draw_consents", "draw_lines", "draw_tickets",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

CHANNEL_WEB, CHANNEL_APP, CHANNEL_STORE = 0, 1, 2
N_STORES = 40


@dataclass(frozen=True)
class Lines:
    """Purchase lines ordered by time (lines of one order are adjacent)."""

    cust: I64
    order_no: I64  # globally unique order number
    t_us: I64  # microseconds from period start
    channel: I64
    product: I64
    quantity: I64
    amount: F64
    store: I64  # store number or -1

    @property
    def n(self) -> int:
        """Number of lines."""
        return int(self.cust.size)


def draw_lines(
    c: Customers, s: Sessions, ev: Events, catalog: Catalog, rng: np.random.Generator
) -> Lines:
    """Create orders and their lines for a chunk.

    Online orders are placed 10–150 s after the session's ``begin_checkout``
    event; store orders fall on opening hours inside the activity window.

    Parameters
    ----------
    c : Customers
        Chunk customers.
    s : Sessions
        Chunk sessions.
    ev : Events
        Chunk events.
    catalog : Catalog
        Product catalogue.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    Lines
        Purchase lines of the chunk.
    """
    co = np.flatnonzero(ev.etype == EventType.BEGIN_CHECKOUT)
    co_sess = ev.sess[co]
    on_t = ev.t[co] + rng.uniform(10.0, 150.0, co.size)
    on_cust = ev.cust[co]
    on_channel = np.where(s.is_app[co_sess], CHANNEL_APP, CHANNEL_WEB)
    on_first = s.cart_product[co_sess]

    st_cust, _ = expand_counts(c.n_store)
    lo, hi = c.a[st_cust], c.b[st_cust]
    day = np.floor((lo + (hi - lo) * rng.random(st_cust.size)) / 86400.0)
    st_t = np.clip(day * 86400.0 + rng.uniform(9.0, 20.0, st_cust.size) * 3600.0, lo, hi)

    o_cust = np.concatenate([on_cust, st_cust])
    o_t = np.concatenate([on_t, st_t])
    o_channel = np.concatenate([on_channel, np.full(st_cust.size, CHANNEL_STORE, dtype=np.int64)])
    o_first = np.concatenate([on_first, np.full(st_cust.size, -1, dtype=np.int64)])
    order = np.lexsort((o_t, o_cust))
    o_cust, o_t, o_channel, o_first = o_cust[order], o_t[order], o_channel[order], o_first[order]
    counts = np.bincount(o_cust, minlength=c.n)
    _, k = expand_counts(counts)
    order_no = c.gidx[o_cust] * 1000 + np.minimum(k, 999)

    home = (c.gidx * 7919 + 13) % N_STORES
    other = rng.integers(0, N_STORES, o_cust.size)
    store = np.where(rng.random(o_cust.size) < 0.85, home[o_cust], other)
    store = np.where(o_channel == CHANNEL_STORE, store, -1)

    u = rng.random(o_cust.size)
    cum = c.lines_cum[o_cust]
    n_lines = 1 + (u >= cum[:, 0]) + (u >= cum[:, 1])
    owner, pos = expand_counts(n_lines.astype(np.int64))
    l_cust = o_cust[owner]
    product = draw_products(l_cust, c, catalog, rng)
    product = np.where((pos == 0) & (o_first[owner] >= 0), o_first[owner], product)
    qty = 1 + rng.poisson(c.extra_qty[l_cust])
    disc = np.round(c.discount[l_cust] * rng.uniform(0.0, 2.0, l_cust.size), 1)
    amount = np.round(catalog.price[product] * qty * (1.0 - np.minimum(disc, 0.6)), 2)
    t_us = np.floor(o_t * 1e6).astype(np.int64)[owner]
    by_time = np.argsort(t_us, kind="stable")
    return Lines(
        cust=l_cust[by_time],
        order_no=order_no[owner][by_time],
        t_us=t_us[by_time],
        channel=o_channel[owner][by_time],
        product=product[by_time],
        quantity=qty.astype(np.int64)[by_time],
        amount=np.maximum(amount, 0.01)[by_time],
        store=store[owner][by_time],
    )


@dataclass(frozen=True)
class Tickets:
    """Support contacts ordered by time."""

    cust: I64
    ticket_no: I64
    t: I64  # seconds from period start
    channel: I64
    topic: I64

    @property
    def n(self) -> int:
        """Number of tickets."""
        return int(self.cust.size)


def draw_tickets(c: Customers, rng: np.random.Generator) -> Tickets:
    """Create support contacts inside each customer's activity window.

    Parameters
    ----------
    c : Customers
        Chunk customers.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    Tickets
        Support contacts of the chunk.
    """
    cust, k = expand_counts(c.n_support)
    lo, hi = c.a[cust], c.b[cust]
    t = np.floor(lo + (hi - lo) * rng.random(cust.size)).astype(np.int64)
    heavy = c.n_support[cust] >= 4
    ch_heavy = np.array([0.15, 0.1, 0.35, 0.4])
    ch_light = np.array([0.5, 0.3, 0.2, 0.0])
    u = rng.random(cust.size)[:, None]
    ch = np.where(
        heavy,
        (u >= np.cumsum(ch_heavy)[:-1]).sum(axis=1),
        (u >= np.cumsum(ch_light)[:-1]).sum(axis=1),
    )
    topic_w = np.array([0.3, 0.2, 0.15, 0.15, 0.12, 0.08])
    topic = (rng.random(cust.size)[:, None] >= np.cumsum(topic_w)[:-1]).sum(axis=1)
    by_time = np.argsort(t, kind="stable")
    return Tickets(
        cust=cust[by_time],
        ticket_no=(c.gidx[cust] * 100 + k)[by_time],
        t=t[by_time],
        channel=ch.astype(np.int64)[by_time],
        topic=topic.astype(np.int64)[by_time],
    )


@dataclass(frozen=True)
class Consents:
    """Consent records grouped by customer, ordered by time."""

    cust: I64
    purpose: I64  # 0 analytics, 1 marketing
    granted: B
    t: I64  # seconds from period start (may precede the period: signup)

    @property
    def n(self) -> int:
        """Number of records."""
        return int(self.cust.size)


PURPOSES: tuple[str, ...] = ("analytics", "marketing")


def draw_consents(
    c: Customers, period_s: float, rng: np.random.Generator
) -> tuple[Consents, int]:
    """Create consent records: grants at signup, later analytics opt-outs.

    Parameters
    ----------
    c : Customers
        Chunk customers.
    period_s : float
        Length of the simulated period in seconds.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    Consents
        Consent records of the chunk.
    int
        Number of customers who opted out of analytics.
    """
    n = c.n
    idx = np.arange(n, dtype=np.int64)
    signup = np.floor(c.signup).astype(np.int64)
    has_analytics = rng.random(n) < 0.99
    has_marketing = rng.random(n) < 0.95
    opt_out = has_analytics & (rng.random(n) < 0.03)
    a_c = idx[has_analytics]
    m_c = idx[has_marketing]
    o_c = idx[opt_out]
    m_t = signup[m_c] + rng.integers(0, 86400, m_c.size)
    lo = np.maximum(c.a[o_c], 0.0)
    o_t = np.floor(lo + (period_s - 3600.0 - lo) * rng.random(o_c.size)).astype(np.int64)
    cust = np.concatenate([a_c, m_c, o_c])
    purpose = np.concatenate([
        np.zeros(a_c.size, dtype=np.int64), np.ones(m_c.size, dtype=np.int64),
        np.zeros(o_c.size, dtype=np.int64),
    ])
    granted = np.concatenate([
        np.ones(a_c.size, dtype=np.bool_), rng.random(m_c.size) < 0.55,
        np.zeros(o_c.size, dtype=np.bool_),
    ])
    t = np.concatenate([signup[a_c], m_t, o_t])
    order = np.lexsort((t, cust))
    cons = Consents(cust=cust[order], purpose=purpose[order], granted=granted[order], t=t[order])
    return cons, int(o_c.size)

