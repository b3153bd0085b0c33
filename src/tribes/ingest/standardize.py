"""Standardizing categorical values.

The rules work on distinct values (there are few) in Python, and the engine applies the
resulting raw -> canonical table with a join, so one definition serves every backend.

Places are looked up in reference data: countries in ISO 3166-1, regions among the ISO
3166-2 subdivisions of their row's country, cities in the GeoNames gazetteer
(:mod:`tribes.ingest.gazetteer`), preferring their row's country. So a region or a city
is standardized per distinct (raw country, raw value) pair of the batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tribes.ingest.gazetteer import city_name
from tribes.ingest.refdata import clean_key, country_code, country_name, region_name, us_state_name

PLACES = ("country", "region", "city")
PAIRED = ("region", "city")  # looked up within their row's country
# the row's country is written but is no country ISO 3166 knows
UNKNOWN_COUNTRY = "?"

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


def _is_null(value: str | None) -> bool:
    return value is None or value.strip().lower() in NULL_MARKERS


def _user_spelling(value: str, user_map: Mapping[str, str] | None) -> str | None:
    """The user's spelling of ``value`` (keys match loosely), else None."""
    if not user_map:
        return None
    return {clean_key(k): v for k, v in user_map.items()}.get(clean_key(value))


@dataclass(frozen=True)
class Spelling:
    """The standard spelling of a place, and whether the reference data (or the user's
    map) knew it; an unknown place keeps its tidied text."""

    value: str | None
    found: bool = True


def place(column: str, value: str | None, user_map: Mapping[str, str] | None = None,
          country: str | None = None) -> Spelling:
    """The standard spelling of a country, region or city.

    The user's map comes first. Then a country is given its English name (ISO 3166-1).
    A region is looked up among the subdivisions (ISO 3166-2) of ``country``, the row's
    country as an alpha-2 code; when the row has no country (None), it is read as a US
    state; when its country is one ISO does not know (:data:`UNKNOWN_COUNTRY`), it is
    only tidied. A city is looked up in the gazetteer among the cities of ``country``,
    or among all when the row's country is missing or unknown.
    """
    if _is_null(value):
        return Spelling(None)
    assert value is not None
    mine = _user_spelling(value, user_map)
    if mine is not None:
        return Spelling(mine)
    known = None if country == UNKNOWN_COUNTRY else country
    if column == "country":
        found = country_name(value)
    elif column == "region":
        found = (us_state_name(value) if country is None
                 else region_name(value, known) if known else None)
    else:
        found = city_name(value, known)
    return Spelling(found) if found else Spelling(_tidy(value), found=False)


def canonical(
    column: str, value: str | None, user_map: Mapping[str, str] | None = None
) -> str | None:
    """The standard spelling of ``value`` in ``column``.

    User mapping tables (``[standardize.<column>]``) are consulted first, matching loosely
    (case, whitespace and punctuation ignored); then the built-in rules: places as
    :func:`place` standardizes them without a country (countries to their English name,
    regions as US states, cities to their name in the gazetteer, other places tidied),
    and every other categorical to lower snake_case.
    """
    if column in PLACES:
        return place(column, value, user_map).value
    if _is_null(value):
        return None
    assert value is not None
    mine = _user_spelling(value, user_map)
    if mine is not None:
        return mine
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


@dataclass(frozen=True)
class PlaceSpellings:
    """The standard spellings of a batch's places.

    ``single``: raw -> standard, for the country and for a region or city of a batch
    without a country column; ``paired``: (raw country, raw value) -> standard, for a
    region or city next to a country column; ``unmatched``: per column, the tidied
    spellings the reference data does not know (one per loose key, sorted).
    """

    single: dict[str, dict[str, str | None]] = field(default_factory=dict)
    paired: dict[str, dict[tuple[str | None, str], str | None]] = field(default_factory=dict)
    unmatched: dict[str, list[str]] = field(default_factory=dict)


def place_spellings(values: Mapping[str, Iterable[str]],
                    pairs: Mapping[str, Iterable[tuple[str | None, str]]],
                    user_maps: Mapping[str, Mapping[str, str]]) -> PlaceSpellings:
    """Standardize a batch's distinct places.

    ``values``: the distinct raw values of place columns standardized alone (the country,
    and regions or cities when there is no country column); ``pairs``: the distinct
    (raw country, raw value) pairs of the region and city (the country None where the row
    has none). The country is standardized first (the user's map included), and each
    pair is looked up within it.
    """
    out = PlaceSpellings()
    missed: dict[str, dict[str, str]] = {}

    def spell(column: str, value: str, country: str | None = None) -> str | None:
        s = place(column, value, user_maps.get(column), country)
        if not s.found and s.value is not None:
            missed.setdefault(column, {}).setdefault(clean_key(s.value), s.value)
        return s.value

    for column, vals in values.items():
        out.single[column] = {v: spell(column, v) for v in vals}
    countries = out.single.get("country", {})

    def code(raw: str | None) -> str | None:
        """The row's country as an alpha-2 code, UNKNOWN_COUNTRY, or None (no country)."""
        standard = None if raw is None else countries.get(raw, raw)
        if _is_null(standard):
            return None
        assert standard is not None
        return country_code(standard) or UNKNOWN_COUNTRY

    for column, column_pairs in pairs.items():
        out.paired[column] = {(c, v): spell(column, v, code(c)) for c, v in column_pairs}
    for column, keyed in missed.items():
        out.unmatched[column] = sorted(keyed.values())
    return out


REFERENCES = {"country": "ISO 3166-1 countries", "region": "ISO 3166-2 subdivisions",
              "city": "GeoNames cities"}
EXAMPLES = 3


def unmatched_report(unmatched: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Per place column, how many distinct values the reference data does not know, a few
    of them, and the line of ``tribes.toml`` that would map the first."""
    return {
        column: {"distinct": len(spellings), "examples": spellings[:EXAMPLES],
                 "reference": REFERENCES[column],
                 "map_with": f"[standardize.{column}] {json.dumps(spellings[0])} = \"...\""}
        for column, spellings in unmatched.items() if spellings
    }
