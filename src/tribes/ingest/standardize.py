"""Standardizing categorical values.

The rules work on distinct values (there are few) in Python, and the engine applies the
resulting raw -> canonical table with a join, so one definition serves every backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from tribes.ingest.refdata import clean_key, country_name, us_state_name

BUILTIN_EVENT_ALIASES: dict[str, str] = {
    "pageview": "page_view",
    "page_viewed": "page_view",
    "screenview": "screen_view",
    "productview": "product_view",
    "product_viewed": "product_view",
    "view_item": "product_view",
    "addtocart": "add_to_cart",
    "add_to_basket": "add_to_cart",
    "product_added": "add_to_cart",
    "removefromcart": "remove_from_cart",
    "checkout_started": "begin_checkout",
    "order_completed": "purchase",
    "order_placed": "purchase",
    "checkout_completed": "purchase",
    "transaction": "purchase",
    "completed_purchase": "purchase",
    "sale": "purchase",
    "signed_in": "login",
    "sign_in": "login",
    "log_in": "login",
}

NULL_MARKERS = frozenset({"", "null", "none", "nan", "n/a", "na", "undefined", "nil", "-", "--"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(value: str) -> str | None:
    """``Add To Cart``, ``addToCart``, ``add-to-cart`` -> ``add_to_cart``; empty -> None."""
    text = _CAMEL.sub("_", value.strip())
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return text or None


def _tidy(value: str) -> str:
    """Collapse whitespace and capitalize words written all lower or all upper case.

    Mixed-case words (``McAllen``) and short upper-case words (``NYC``) are kept.
    """
    words = []
    for w in value.split():
        if w.islower() or (w.isupper() and len(w) > 3):
            w = w[:1].upper() + w[1:].lower()
        words.append(w)
    return " ".join(words)


def canonical(
    column: str, value: str | None, user_map: Mapping[str, str] | None = None
) -> str | None:
    """The standard spelling of ``value`` in ``column``.

    User mapping tables (``[standardize.<column>]``) are consulted first, matching loosely
    (case, whitespace and punctuation ignored); then the built-in rules: countries to
    their English name, US states to their full name, other places tidied, and every
    other categorical to lower snake_case.
    """
    if value is None or value.strip().lower() in NULL_MARKERS:
        return None
    if user_map:
        hit = {clean_key(k): v for k, v in user_map.items()}.get(clean_key(value))
        if hit is not None:
            return hit
    if column == "country":
        return country_name(value) or _tidy(value)
    if column == "region":
        return us_state_name(value) or _tidy(value)
    if column == "city":
        return _tidy(value)
    if column == "gender":
        name = snake_case(value)
        return GENDERS.get(name or "", name)
    return snake_case(value)


# common spellings of gender values (anything else is kept, in snake_case)
GENDERS = {"f": "female", "w": "female", "woman": "female", "women": "female",
           "m": "male", "man": "male", "men": "male", "d": "diverse", "x": "diverse",
           "nb": "non_binary", "nonbinary": "non_binary", "u": "unknown"}


def canonical_event_type(value: str | None, aliases: Mapping[str, str]) -> str | None:
    """Event type in snake_case with built-in and configured aliases applied."""
    if value is None or value.strip().lower() in NULL_MARKERS:
        return None
    name = snake_case(value)
    if name is None:
        return None
    merged = {**BUILTIN_EVENT_ALIASES, **{snake_case(k) or k: v for k, v in aliases.items()}}
    return merged.get(name, name)


def mapping_for(
    column: str,
    values: Iterable[str | None],
    *,
    user_map: Mapping[str, str] | None = None,
    event_aliases: Mapping[str, str] | None = None,
) -> dict[str, str | None]:
    """raw -> canonical for every distinct raw value of one column."""
    out: dict[str, str | None] = {}
    for v in values:
        if v is None:
            continue
        if column == "event_type":
            out[v] = canonical_event_type(v, event_aliases or {})
        else:
            out[v] = canonical(column, v, user_map)
    return out
