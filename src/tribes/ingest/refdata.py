"""Reference data for location standardization: countries (ISO 3166-1), their
subdivisions (ISO 3166-2, both from pycountry) and US states.

Cities are matched against the GeoNames gazetteer in :mod:`tribes.ingest.gazetteer`.
"""

from __future__ import annotations

import functools
import re
import unicodedata

US_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
    "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi",
    "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin",
    "WY": "Wyoming", "DC": "District of Columbia", "PR": "Puerto Rico", "GU": "Guam",
    "VI": "U.S. Virgin Islands", "AS": "American Samoa", "MP": "Northern Mariana Islands",
}

# old postal abbreviations still found in address data
US_STATE_ABBREVIATIONS: dict[str, str] = {
    "ala": "AL", "ariz": "AZ", "ark": "AR", "calif": "CA", "cal": "CA", "colo": "CO",
    "conn": "CT", "del": "DE", "fla": "FL", "ill": "IL", "ind": "IN", "kan": "KS",
    "kans": "KS", "ky": "KY", "mass": "MA", "mich": "MI", "minn": "MN", "miss": "MS",
    "mont": "MT", "neb": "NE", "nebr": "NE", "nev": "NV", "okla": "OK", "ore": "OR",
    "penn": "PA", "penna": "PA", "tenn": "TN", "tex": "TX", "wash": "WA", "wis": "WI",
    "wisc": "WI", "wyo": "WY", "dist of columbia": "DC", "washington dc": "DC",
}

COUNTRY_ALIASES: dict[str, str] = {
    "usa": "US", "us": "US", "america": "US", "united states of america": "US",
    "the united states": "US", "us of a": "US", "uk": "GB", "great britain": "GB",
    "britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northern ireland": "GB", "holland": "NL", "the netherlands": "NL",
    "south korea": "KR", "korea": "KR", "north korea": "KP", "russia": "RU",
    "czech republic": "CZ", "czechia": "CZ", "vietnam": "VN", "iran": "IR", "syria": "SY",
    "uae": "AE", "ivory coast": "CI", "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ",
    "moldova": "MD", "laos": "LA", "taiwan": "TW", "deutschland": "DE", "espana": "ES",
    "brasil": "BR", "mexique": "MX", "italia": "IT", "nippon": "JP",
}


_ELIDED = ".'’`"  # dropped: "N.Y." -> "NY", "O'Hare" -> "OHare"
# deletes the elided characters and turns every other ASCII character but a-z and 0-9 into
# a space (str.translate: several times faster than regular expressions)
_KEY_TABLE = str.maketrans({**{chr(i): " " for i in range(128) if not chr(i).isalnum()},
                            **dict.fromkeys(_ELIDED)})
_NOT_KEY = re.compile(r"[^0-9a-z]+")


def clean_key(value: str) -> str:
    """Lower-case, accents and punctuation removed, whitespace collapsed: ``N.Y.`` -> ``ny``."""
    text = value
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower().translate(_KEY_TABLE)
    if not text.isascii():  # letters without an ASCII base (ß, ø, other scripts) separate
        text = _NOT_KEY.sub(" ", text)
    return " ".join(text.split())


@functools.lru_cache(maxsize=1)
def _countries() -> tuple[dict[str, str], dict[str, str]]:
    import pycountry

    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    for c in pycountry.countries:
        display = getattr(c, "common_name", None) or c.name
        names[c.alpha_2] = display
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            v = getattr(c, attr, None)
            if v:
                keys.setdefault(clean_key(v), c.alpha_2)
    for alias, code in COUNTRY_ALIASES.items():
        keys[clean_key(alias)] = code
    return names, keys


def country_code(value: str) -> str | None:
    """ISO 3166-1 alpha-2 code of a country written as a name or ISO code, else None."""
    return _countries()[1].get(clean_key(value))


def country_name(value: str) -> str | None:
    """Canonical English name of a country written as a name or ISO code, else None."""
    code = country_code(value)
    return _countries()[0][code] if code else None


@functools.lru_cache(maxsize=1)
def _states() -> dict[str, str]:
    keys = {clean_key(code): name for code, name in US_STATES.items()}
    keys.update({clean_key(name): name for name in US_STATES.values()})
    keys.update({clean_key(k): US_STATES[v] for k, v in US_STATE_ABBREVIATIONS.items()})
    return keys


def us_state_name(value: str) -> str | None:
    """Full name of a US state written as a code, name or old abbreviation, else None."""
    return _states().get(clean_key(value))


# how surely a spelling names a subdivision: its code or ISO name, then another name ISO
# gives (in brackets) or the English one, then the name's head when ISO inverts it
# ("Madrid, Comunidad de": "Madrid" is also a province, whose own name wins)
_CODE_OR_NAME, _OTHER_NAME, _HEAD = 0, 1, 2
_BRACKETS = re.compile(r"\s*\[([^\]]*)\]")
_CODE_IN_BRACKETS = re.compile(r"\s+[A-Z]{2}-[A-Z0-9]{1,3}$")


@functools.lru_cache(maxsize=1)
def _subdivisions() -> dict[str, dict[str, str]]:
    """Per country (alpha-2): spelling key -> standard name of each ISO 3166-2 subdivision.

    The standard name is the one ISO publishes (pycountry's), without the second-language
    form some names carry in brackets (``Catalunya [Cataluña]`` -> ``Catalunya``); US
    states keep the names of :data:`US_STATES`. Keys are the code (``NH``, ``NL-NH``),
    the name, the bracketed name, the English name (from pycountry's translations:
    ``Bavaria`` for ``Bayern``) and the part before the comma of inverted names. Where
    two subdivisions share a key, the surer kind of key wins, then the top-level one.
    """
    import gettext

    import pycountry

    english = gettext.translation("iso3166-2", pycountry.LOCALES_DIR, languages=["en"],
                                  fallback=True)
    ranked: dict[str, dict[str, tuple[int, bool, str]]] = {}

    def add(country: str, spelling: str, rank: int, nested: bool, name: str) -> None:
        key = clean_key(spelling)
        keys = ranked.setdefault(country, {})
        if key and (key not in keys or (rank, nested) < keys[key][:2]):
            keys[key] = (rank, nested, name)

    for code, name in US_STATES.items():
        add("US", code, _CODE_OR_NAME, False, name)
        add("US", name, _CODE_OR_NAME, False, name)
    for old, code in US_STATE_ABBREVIATIONS.items():
        add("US", old, _OTHER_NAME, False, US_STATES[code])
    for sub in pycountry.subdivisions:
        country, suffix = sub.code.split("-", 1)
        nested = getattr(sub, "parent_code", None) is not None
        iso = sub.name
        name = _BRACKETS.sub("", iso).strip()
        if country == "US" and suffix in US_STATES:
            name = US_STATES[suffix]
        for spelling in (suffix, sub.code, iso, name):
            add(country, spelling, _CODE_OR_NAME, nested, name)
        for other in _BRACKETS.findall(iso):
            add(country, _CODE_IN_BRACKETS.sub("", other), _OTHER_NAME, nested, name)
        for other in english.gettext(iso).split(" / "):
            add(country, other, _OTHER_NAME, nested, name)
        if "," in name:
            add(country, name.split(",")[0], _HEAD, nested, name)
    return {c: {k: v[2] for k, v in keys.items()} for c, keys in ranked.items()}


def region_name(value: str, country: str) -> str | None:
    """Standard name of a region of ``country`` (alpha-2) written as its ISO 3166-2 code
    or a name, else None: ``("NH", "NL")`` -> ``Noord-Holland``."""
    return _subdivisions().get(country, {}).get(clean_key(value))
