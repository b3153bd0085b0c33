"""Reference data for location standardization: countries (ISO 3166) and US states."""

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


def clean_key(value: str) -> str:
    """Lower-case, accents and punctuation removed, whitespace collapsed: ``N.Y.`` -> ``ny``."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[.'’`]", "", text)
    text = re.sub(r"[^0-9a-z]+", " ", text)
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


def country_name(value: str) -> str | None:
    """Canonical English name of a country written as a name or ISO code, else None."""
    names, keys = _countries()
    code = keys.get(clean_key(value))
    return names[code] if code else None


@functools.lru_cache(maxsize=1)
def _states() -> dict[str, str]:
    keys = {clean_key(code): name for code, name in US_STATES.items()}
    keys.update({clean_key(name): name for name in US_STATES.values()})
    keys.update({clean_key(k): US_STATES[v] for k, v in US_STATE_ABBREVIATIONS.items()})
    return keys


def us_state_name(value: str) -> str | None:
    """Full name of a US state written as a code, name or old abbreviation, else None."""
    return _states().get(clean_key(value))
