"""Run-wide lookup tables and per-chunk identifier strings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from tribes.synth import model
from tribes.synth.encode import Vocab, build_vocab, digits, fixed_strings, hex64, mix64
from tribes.synth.population import Catalog, Customers

__all__ = [
    "BASE_URL",
    "COOKIE_SLOTS",
    "Context",
    "build_context",
    "cookie_ids",
    "customer_ids",
    "emails",
    "event_ids",
    "install_ids",
    "ips",
    "phones",
]

I64 = NDArray[np.int64]

BASE_URL = "https://shop.example.com"
COOKIE_SLOTS = 6
_SALT_COOKIE = 0x0C00C1E
_SALT_INSTALL = 0x1257A11
_SALT_IP = 0x1D0ADD4
_SALT_EVENT_HI = 0xE7E47001
_SALT_EVENT_LO = 0xE7E47002
_SALT_PHONE = 0x9403E


@dataclass(frozen=True)
class Context:
    """Lookup tables shared by all chunks of one run."""

    seed: int
    start_epoch: int
    period_s: int
    catalog: Catalog
    product_ids: pa.Array
    categories: pa.Array
    urls: pa.Array
    url_category: int  # offset of category pages in ``urls``
    url_search: int
    url_product: int
    web_events: Vocab
    app_events: Vocab
    mediums: Vocab
    devices: Vocab
    countries: Vocab
    states: Vocab
    cities: Vocab
    genders: Vocab
    consent: Vocab
    loc_country: I64
    loc_state: I64
    loc_city: I64

    def salt(self, kind: int) -> int:
        """Combine the run seed with an id-kind constant."""
        return int(mix64(np.array([self.seed], dtype=np.int64), kind)[0])


# Static URL positions (see ``build_context``).
URL_HOME, URL_DEALS, URL_ACCOUNT, URL_HELP, URL_CART, URL_CHECKOUT, URL_LOGIN = range(7)


def build_context(seed: int, start_epoch: int, period_s: int, catalog: Catalog) -> Context:
    """Build the run-wide lookup tables.

    Parameters
    ----------
    seed : int
        Master seed.
    start_epoch : int
        Unix seconds of the period start.
    period_s : int
        Period length in seconds.
    catalog : Catalog
        Product catalogue.

    Returns
    -------
    Context
        Lookup tables.
    """
    pid = fixed_strings(catalog.product_code.size, ["P", digits(catalog.product_code, 6)])
    static = ["/", "/deals", "/account", "/help", "/cart", "/checkout", "/login"]
    urls = [BASE_URL + p for p in static]
    url_category = len(urls)
    urls += [f"{BASE_URL}/c/{c}" for c in model.CATEGORIES]
    url_search = len(urls)
    urls += [f"{BASE_URL}/search?q={c.replace('_', '+')}" for c in model.CATEGORIES]
    url_product = len(urls)
    prod_urls = pc.binary_join_element_wise(BASE_URL + "/p/", pid, "")
    url_arr = pa.concat_arrays([pa.array(urls, type=pa.string()), prod_urls])
    return Context(
        seed=seed,
        start_epoch=start_epoch,
        period_s=period_s,
        catalog=catalog,
        product_ids=pid,
        categories=pa.array(model.CATEGORIES, type=pa.string()),
        urls=url_arr,
        url_category=url_category,
        url_search=url_search,
        url_product=url_product,
        web_events=build_vocab(model.EVENT_WEB),
        app_events=build_vocab(model.EVENT_APP),
        mediums=build_vocab(model.MEDIUM_VARIANTS),
        devices=build_vocab(model.DEVICE_VARIANTS),
        countries=build_vocab(model.COUNTRY_VARIANTS),
        states=build_vocab(model.STATE_VARIANTS),
        cities=build_vocab(model.CITY_VARIANTS),
        genders=build_vocab(model.GENDER_VARIANTS),
        consent=build_vocab(model.CONSENT_VARIANTS),
        loc_country=np.array([loc[0] for loc in model.LOCATIONS], dtype=np.int64),
        loc_state=np.array([loc[1] for loc in model.LOCATIONS], dtype=np.int64),
        loc_city=np.array([loc[2] for loc in model.LOCATIONS], dtype=np.int64),
    )


def customer_ids(gidx: I64) -> pa.Array:
    """Customer ids ``C0000001`` (1-based global index, 7 digits).

    Parameters
    ----------
    gidx : ndarray of int64
        0-based global customer indices.

    Returns
    -------
    pyarrow.Array
        Id strings.
    """
    return fixed_strings(gidx.size, ["C", digits(gidx + 1, 7)])


def _slot_keys(gidx: I64, stride: int, slots: int) -> I64:
    """Hash keys ``gidx * stride + slot`` for every (customer, slot), customer-major."""
    return (gidx[:, None] * stride + np.arange(slots)).ravel()


def _hex_ids(ctx: Context, prefix: str, key: I64, salt: int) -> pa.Array:
    """Ids ``prefix`` + 16 hex of the salted hash of each key."""
    return fixed_strings(key.size, [prefix, hex64(mix64(key, ctx.salt(salt)))])


def cookie_ids(ctx: Context, gidx: I64) -> pa.Array:
    """Cookie ids ``ck_`` + 16 hex for every (customer, slot) of a chunk.

    Parameters
    ----------
    ctx : Context
        Run context.
    gidx : ndarray of int64
        Global customer indices of the chunk.

    Returns
    -------
    pyarrow.Array
        ``len(gidx) * COOKIE_SLOTS`` ids, customer-major.
    """
    return _hex_ids(ctx, "ck_", _slot_keys(gidx, 8, COOKIE_SLOTS), _SALT_COOKIE)


def install_ids(ctx: Context, gidx: I64) -> pa.Array:
    """Install ids ``in_`` + 16 hex for both install slots of each customer.

    Parameters
    ----------
    ctx : Context
        Run context.
    gidx : ndarray of int64
        Global customer indices of the chunk.

    Returns
    -------
    pyarrow.Array
        ``len(gidx) * 2`` ids, customer-major.
    """
    return _hex_ids(ctx, "in_", _slot_keys(gidx, 4, 2), _SALT_INSTALL)


def ips(ctx: Context, gidx: I64) -> pa.Array:
    """IPv4 addresses, one per (customer, cookie slot).

    Parameters
    ----------
    ctx : Context
        Run context.
    gidx : ndarray of int64
        Global customer indices of the chunk.

    Returns
    -------
    pyarrow.Array
        Dotted-quad strings, customer-major like :func:`cookie_ids`.
    """
    h = mix64(_slot_keys(gidx, 8, COOKIE_SLOTS), ctx.salt(_SALT_IP))
    o1 = (h & np.uint64(0xFF)).astype(np.int64) % 212 + 11
    o1 = np.where(o1 == 127, 128, o1)
    parts = [
        pc.cast(pa.array(x), pa.string())
        for x in (
            o1,
            ((h >> np.uint64(8)) & np.uint64(0xFF)).astype(np.int64),
            ((h >> np.uint64(16)) & np.uint64(0xFF)).astype(np.int64),
            ((h >> np.uint64(24)) % np.uint64(254)).astype(np.int64) + 1,
        )
    ]
    return pc.binary_join_element_wise(*parts, ".")


def event_ids(ctx: Context, key: I64) -> pa.Array:
    """UUID-shaped event ids (8-4-4-4-12 hex), unique per key.

    Parameters
    ----------
    ctx : Context
        Run context.
    key : ndarray of int64
        Unique event keys.

    Returns
    -------
    pyarrow.Array
        Event id strings.
    """
    hi = hex64(mix64(key, ctx.salt(_SALT_EVENT_HI)))
    lo = hex64(mix64(key, ctx.salt(_SALT_EVENT_LO)))
    return fixed_strings(
        key.size, [hi[:, :8], "-", hi[:, 8:12], "-", hi[:, 12:16], "-", lo[:, :4], "-", lo[:, 4:]]
    )


def emails(c: Customers) -> pa.Array:
    """Lower-case e-mail addresses ``first.last<n>@domain``, unique per customer.

    Parameters
    ----------
    c : Customers
        Chunk customers.

    Returns
    -------
    pyarrow.Array
        One address per customer.
    """
    first = pa.array(model.FIRST_NAMES).take(pa.array(c.first_name))
    last = pa.array(model.LAST_NAMES).take(pa.array(c.last_name))
    num = pc.cast(pa.array(c.gidx + 1), pa.string())
    dom = pa.array(model.DOMAINS).take(pa.array(c.domain))
    local = pc.binary_join_element_wise(first, ".", last, num, "")
    return pc.binary_join_element_wise(local, dom, "@")


def phones(ctx: Context, c: Customers, rng: np.random.Generator) -> pa.Array:
    """Fictional 555 phone numbers in four formats.

    Parameters
    ----------
    ctx : Context
        Run context.
    c : Customers
        Chunk customers.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    pyarrow.Array
        One phone number per customer.
    """
    h = mix64(c.gidx, ctx.salt(_SALT_PHONE))
    area = (h % np.uint64(800)).astype(np.int64) + 200
    line = ((h >> np.uint64(16)) % np.uint64(10000)).astype(np.int64)
    a, p, ln = digits(area, 3), digits(np.full(c.n, 555), 3), digits(line, 4)
    n = c.n
    formats = [
        fixed_strings(n, ["(", a, ") ", p, "-", ln]),
        fixed_strings(n, [a, ".", p, ".", ln]),
        fixed_strings(n, ["+1", a, p, ln]),
        fixed_strings(n, [a, "-", p, "-", ln]),
    ]
    kind = rng.integers(0, 4, n)
    return pc.choose(pa.array(kind.astype(np.int8)), *formats)
