"""Turn the numeric simulation of a chunk into Arrow tables of text/values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from tribes.synth import model
from tribes.synth.activity import CHANNEL_STORE, PURPOSES, Consents, Lines, Tickets
from tribes.synth.context import (
    COOKIE_SLOTS,
    URL_ACCOUNT,
    URL_CART,
    URL_CHECKOUT,
    URL_DEALS,
    URL_HELP,
    URL_HOME,
    URL_LOGIN,
    Context,
    cookie_ids,
    customer_ids,
    emails,
    event_ids,
    install_ids,
    ips,
    phones,
)
from tribes.synth.defects import (
    FUTURE_SHIFT_S,
    garbage_timestamps,
    negate_amounts,
    plan_duplicates,
    plan_web_defects,
)
from tribes.synth.encode import (
    Vocab,
    digits,
    fixed_strings,
    pick,
    take_strings,
    text_date,
    text_dmy_hm,
    text_epoch_ms,
    text_iso_offset,
    text_iso_z,
)
from tribes.synth.model import EventType
from tribes.synth.population import Customers
from tribes.synth.sessions import PAGE_CATEGORY, Events, Sessions

__all__ = [
    "APP_COLUMNS",
    "WEB_COLUMNS",
    "app_jsonl",
    "consents_table",
    "customers_table",
    "ground_truth_table",
    "purchases_table",
    "support_table",
    "web_table",
]

I64 = NDArray[np.int64]
B = NDArray[np.bool_]

WEB_COLUMNS: tuple[str, ...] = (
    "timestamp", "event_name", "cookie_id", "user_id", "page_url", "product_id", "category",
    "utm_medium", "device_type", "country", "state", "city", "email", "ip",
)
APP_COLUMNS: tuple[str, ...] = (
    "eventId", "eventTime", "eventName", "installId", "userId", "platform", "screen",
    "productId", "category",
)
PURCHASE_SCHEMA = pa.schema([
    ("sold_at", pa.timestamp("us", tz="UTC")),
    ("member_no", pa.string()),
    ("order_id", pa.string()),
    ("amount", pa.float64()),
    ("quantity", pa.int64()),
    ("product_id", pa.string()),
    ("category", pa.string()),
    ("channel", pa.string()),
    ("store_id", pa.string()),
])
# share of ISO-Z, offset and epoch-ms web timestamps
TS_KIND_P = (0.85, 0.08, 0.07)
OFFSETS_MIN = np.array([60, 120, -300, -420, 330, -240, 540], dtype=np.int64)
PAGE_URL = np.array([URL_HOME, URL_DEALS, URL_ACCOUNT, URL_HELP], dtype=np.int64)
SCREENS = ("home", "deals", "account", "help", "category", "product_detail", "cart",
           "checkout", "login", "search")


def _assemble(kind: I64, parts: list[pa.Array]) -> pa.Array:
    """Scatter per-kind arrays (each in row order of its kind) into one column."""
    order = np.argsort(kind, kind="stable")
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    merged = pa.concat_arrays([p.cast(pa.string()) for p in parts])
    return merged.take(pa.array(inv))


def _spell(vocab: Vocab, codes: I64, rng: np.random.Generator) -> pa.Array:
    """Random spelling of each code as text (negative codes become nulls)."""
    return take_strings(vocab.values, pick(vocab, codes, rng))


def _geo(
    ctx: Context, loc: I64, missing: tuple[B, B, B], rng: np.random.Generator
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Messy country/state/city columns for location codes.

    ``missing`` blanks the country, state and city column respectively.
    """
    safe = np.maximum(loc, 0)
    country = np.where(missing[0], -1, ctx.loc_country[safe])
    state = np.where(missing[1], -1, ctx.loc_state[safe])
    city = np.where(missing[2], -1, ctx.loc_city[safe])
    return (
        _spell(ctx.countries, country, rng),
        _spell(ctx.states, state, rng),
        _spell(ctx.cities, city, rng),
    )


def _page_index(ctx: Context, etype: I64, page: I64, product: I64, category: I64) -> I64:
    """Index into ``ctx.urls`` (web) for each event."""
    safe_page = np.minimum(np.maximum(page, 0), PAGE_URL.size - 1)
    url = np.where(page == PAGE_CATEGORY, ctx.url_category + category, PAGE_URL[safe_page])
    url = np.where(etype == EventType.PRODUCT_VIEW, ctx.url_product + product, url)
    url = np.where(etype == EventType.ADD_TO_CART, ctx.url_product + product, url)
    url = np.where(etype == EventType.REMOVE_FROM_CART, URL_CART, url)
    url = np.where(etype == EventType.BEGIN_CHECKOUT, URL_CHECKOUT, url)
    url = np.where(etype == EventType.LOGIN, URL_LOGIN, url)
    return np.where(etype == EventType.SEARCH, ctx.url_search + category, url).astype(np.int64)


def web_table(
    ctx: Context, c: Customers, s: Sessions, ev: Events, rate: float, rng: np.random.Generator
) -> tuple[pa.Table, dict[str, int]]:
    """Build the web clickstream rows of a chunk (time-ordered, with defects).

    Parameters
    ----------
    ctx : Context
        Run context.
    c : Customers
        Chunk customers.
    s : Sessions
        Chunk sessions.
    ev : Events
        Chunk events (web and app).
    rate : float
        Defect rate per defect kind.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    pyarrow.Table
        Rows with :data:`WEB_COLUMNS`, all strings.
    dict
        Planted defect counts.
    """
    w = np.flatnonzero(~s.is_app[ev.sess])
    tsec = np.floor(ev.t[w]).astype(np.int64)
    order = np.argsort(tsec, kind="stable")
    w, tsec = w[order], tsec[order]
    n = w.size
    sess, cust, etype = ev.sess[w], ev.cust[w], ev.etype[w]
    product, category = ev.product[w], ev.category[w]
    defects = plan_web_defects(etype, rate, rng)

    epoch = ctx.start_epoch + tsec
    kind = (rng.random(n)[:, None] >= np.cumsum(TS_KIND_P)[:-1]).sum(axis=1).astype(np.int64)
    kind[defects.ts_parse] = 3
    kind[defects.future] = 4
    offs = OFFSETS_MIN[rng.integers(0, OFFSETS_MIN.size, int((kind == 1).sum()))]
    timestamp = _assemble(kind, [
        text_iso_z(epoch[kind == 0]),
        text_iso_offset(epoch[kind == 1], offs),
        text_epoch_ms(epoch[kind == 2] * 1000),
        garbage_timestamps(int((kind == 3).sum()), rng),
        text_iso_z(epoch[kind == 4] + FUTURE_SHIFT_S),
    ])

    slot = s.slot[sess]
    cookie = cust * COOKIE_SLOTS + slot
    ip = ips(ctx, c.gidx).take(pa.array(cookie))
    cookie[defects.no_id] = -1
    user = np.where(ev.logged[w], cust, -1)
    user[defects.no_id] = -1
    is_login = etype == EventType.LOGIN
    mail = np.where(is_login, cust + c.n * (rng.random(n) < 0.2), -1)
    mail[defects.no_id] = -1
    lower = emails(c)
    mail_vocab = pa.concat_arrays([lower, pc.utf8_capitalize(lower)])

    u = rng.random(n)
    travel = rng.integers(0, ctx.loc_city.size, n)
    loc = np.where(u < 0.95, c.loc[cust], np.where(u < 0.97, travel, -1))
    gone = loc < 0
    country, state, city = _geo(ctx, loc, (gone, gone, gone), rng)
    cols = {
        "timestamp": timestamp,
        "event_name": _spell(ctx.web_events, etype, rng),
        "cookie_id": take_strings(cookie_ids(ctx, c.gidx), cookie),
        "user_id": take_strings(customer_ids(c.gidx), user),
        "page_url": ctx.urls.take(pa.array(_page_index(ctx, etype, ev.page[w], product, category))),
        "product_id": take_strings(ctx.product_ids, product),
        "category": take_strings(ctx.categories, category),
        "utm_medium": _spell(ctx.mediums, s.medium[sess], rng),
        "device_type": _spell(ctx.devices, c.dev_type[cust, slot % 3], rng),
        "country": country,
        "state": state,
        "city": city,
        "email": take_strings(mail_vocab, mail),
        "ip": ip,
    }
    return pa.table(cols), defects.counts()


def _json_str(arr: pa.Array) -> pa.Array:
    """JSON-encode strings that need no escaping; nulls become ``null``."""
    return pc.fill_null(pc.binary_join_element_wise('"', arr, '"', ""), "null")


def app_jsonl(
    ctx: Context, c: Customers, s: Sessions, ev: Events, rate: float, rng: np.random.Generator
) -> tuple[pa.Array, int, int]:
    """Build the app event lines (JSON objects, newline-terminated) of a chunk.

    Parameters
    ----------
    ctx : Context
        Run context.
    c : Customers
        Chunk customers.
    s : Sessions
        Chunk sessions.
    ev : Events
        Chunk events (web and app).
    rate : float
        Share of events delivered twice.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    pyarrow.Array
        One JSON line (with trailing newline) per delivered event.
    int
        Number of lines.
    int
        Number of duplicate deliveries.
    """
    a = np.flatnonzero(s.is_app[ev.sess])
    cust = ev.cust[a]
    counts = np.bincount(cust, minlength=c.n)
    within = np.arange(a.size, dtype=np.int64) - (np.cumsum(counts) - counts)[cust]
    key = (c.gidx[cust] << np.int64(20)) + within
    ms = ctx.start_epoch * 1000 + np.floor(ev.t[a] * 1000.0).astype(np.int64)
    order = np.argsort(ms, kind="stable")
    sel, n_dup = plan_duplicates(a.size, rate, rng)
    pick_rows = order[sel]
    a, cust, key, ms = a[pick_rows], cust[pick_rows], key[pick_rows], ms[pick_rows]
    sess, etype = ev.sess[a], ev.etype[a]
    inst = s.slot[sess]

    screen = np.select(
        [etype == EventType.LANDING, etype == EventType.PAGE_VIEW,
         (etype == EventType.PRODUCT_VIEW) | (etype == EventType.ADD_TO_CART),
         etype == EventType.REMOVE_FROM_CART, etype == EventType.BEGIN_CHECKOUT,
         etype == EventType.LOGIN],
        [0, np.maximum(ev.page[a], 0), 5, 6, 7, 8],
        default=9,
    ).astype(np.int64)
    # Event names are drawn per delivered row but duplicates must stay identical,
    # so the app vocabulary has exactly one spelling per type.
    name = take_strings(ctx.app_events.values, ctx.app_events.offsets[etype])
    user = take_strings(customer_ids(c.gidx), np.where(ev.logged[a], cust, -1))
    platform = pa.array(["ios", "android"]).take(pa.array(c.platform[cust, inst]))
    lines = pc.binary_join_element_wise(
        '{"eventId":"', event_ids(ctx, key),
        '","eventTime":', pc.cast(pa.array(ms), pa.string()),
        ',"eventName":"', name,
        '","installId":"', install_ids(ctx, c.gidx).take(pa.array(cust * 2 + inst)),
        '","userId":', _json_str(user),
        ',"platform":"', platform,
        '","screen":"', pa.array(SCREENS).take(pa.array(screen)),
        '","productId":', _json_str(take_strings(ctx.product_ids, ev.product[a])),
        ',"category":', _json_str(take_strings(ctx.categories, ev.category[a])),
        "}\n",
        "",
    )
    return lines, int(a.size), n_dup


def purchases_table(
    ctx: Context, c: Customers, lines: Lines, rate: float, rng: np.random.Generator
) -> tuple[pa.Table, int]:
    """Build purchase lines of a chunk.

    Parameters
    ----------
    ctx : Context
        Run context.
    c : Customers
        Chunk customers.
    lines : Lines
        Numeric purchase lines.
    rate : float
        Share of lines with a negative amount.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    pyarrow.Table
        Table with :data:`PURCHASE_SCHEMA`.
    int
        Number of negative-amount lines.
    """
    amount, n_neg = negate_amounts(lines.amount, rate, rng)
    sold_at = ctx.start_epoch * 1_000_000 + lines.t_us
    store = np.where(lines.store >= 0, lines.store + 1, 0)
    store_txt = fixed_strings(lines.n, ["S", digits(store, 3)])
    is_store = pa.array(lines.channel == CHANNEL_STORE)
    store_col = pc.if_else(is_store, store_txt, pa.nulls(lines.n, pa.string()))
    table = pa.table(
        {
            "sold_at": pa.array(sold_at, type=pa.timestamp("us", tz="UTC")),
            "member_no": customer_ids(c.gidx).take(pa.array(lines.cust)),
            "order_id": fixed_strings(lines.n, ["O", digits(lines.order_no, 11)]),
            "amount": pa.array(amount, type=pa.float64()),
            "quantity": pa.array(lines.quantity, type=pa.int64()),
            "product_id": ctx.product_ids.take(pa.array(lines.product)),
            "category": ctx.categories.take(pa.array(ctx.catalog.category[lines.product])),
            "channel": pa.array(["web", "app", "store"]).take(pa.array(lines.channel)),
            "store_id": store_col,
        },
        schema=PURCHASE_SCHEMA,
    )
    return table, n_neg


def support_table(ctx: Context, c: Customers, tickets: Tickets) -> pa.Table:
    """Build support contacts of a chunk (``created`` as ``%d/%m/%Y %H:%M``).

    Parameters
    ----------
    ctx : Context
        Run context.
    c : Customers
        Chunk customers.
    tickets : Tickets
        Numeric tickets.

    Returns
    -------
    pyarrow.Table
        Columns ``ticket_id, created, customer_id, contact_channel, topic``.
    """
    return pa.table({
        "ticket_id": fixed_strings(tickets.n, ["T", digits(tickets.ticket_no, 9)]),
        "created": text_dmy_hm(ctx.start_epoch + tickets.t),
        "customer_id": customer_ids(c.gidx).take(pa.array(tickets.cust)),
        "contact_channel": pa.array(model.CONTACT_CHANNELS).take(pa.array(tickets.channel)),
        "topic": pa.array(model.SUPPORT_TOPICS).take(pa.array(tickets.topic)),
    })


def customers_table(ctx: Context, c: Customers, rng: np.random.Generator) -> pa.Table:
    """Build the customer master rows of a chunk.

    Parameters
    ----------
    ctx : Context
        Run context.
    c : Customers
        Chunk customers.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    pyarrow.Table
        Columns ``customer_id, email, first_name, last_name, phone,
        signup_date, country, state, city, age, gender``.
    """
    miss = rng.random((c.n, 3)) < 0.06
    first = pc.utf8_capitalize(pa.array(model.FIRST_NAMES)).take(pa.array(c.first_name))
    last = pc.utf8_capitalize(pa.array(model.LAST_NAMES)).take(pa.array(c.last_name))
    signup = ctx.start_epoch + np.floor(c.signup).astype(np.int64)
    age = pa.array(c.age, mask=c.age < 0, type=pa.int64())
    # Random draws in column order: phone, geo, gender.
    phone = phones(ctx, c, rng)
    country, state, city = _geo(ctx, c.loc, (miss[:, 0], miss[:, 1], miss[:, 2]), rng)
    return pa.table({
        "customer_id": customer_ids(c.gidx),
        "email": emails(c),
        "first_name": first,
        "last_name": last,
        "phone": phone,
        "signup_date": text_date(signup),
        "country": country,
        "state": state,
        "city": city,
        "age": age,
        "gender": _spell(ctx.genders, c.gender, rng),
    })


def consents_table(
    ctx: Context, c: Customers, cons: Consents, rng: np.random.Generator
) -> pa.Table:
    """Build consent records of a chunk.

    Parameters
    ----------
    ctx : Context
        Run context.
    c : Customers
        Chunk customers.
    cons : Consents
        Numeric consent records.
    rng : numpy.random.Generator
        Chunk random source.

    Returns
    -------
    pyarrow.Table
        Columns ``customer_id, purpose, granted, ts`` (``ts`` ISO-8601 UTC).
    """
    code = np.where(cons.granted, 0, 1).astype(np.int64)
    return pa.table({
        "customer_id": customer_ids(c.gidx).take(pa.array(cons.cust)),
        "purpose": pa.array(PURPOSES).take(pa.array(cons.purpose)),
        "granted": _spell(ctx.consent, code, rng),
        "ts": text_iso_z(ctx.start_epoch + cons.t),
    })


def ground_truth_table(c: Customers) -> pa.Table:
    """Build ``customer_id, segment`` rows of a chunk.

    Parameters
    ----------
    c : Customers
        Chunk customers.

    Returns
    -------
    pyarrow.Table
        Planted segment per customer.
    """
    names = pa.array([s.name for s in model.SEGMENTS])
    return pa.table({
        "customer_id": customer_ids(c.gidx),
        "segment": names.take(pa.array(c.seg.astype(np.int64))),
    })
