"""Standard spellings of places: regions within their country (ISO 3166-2), cities in the
GeoNames gazetteer, the user's map first, and the values neither knows reported.

Expected names are the references' own, written out: ISO 3166-2 as pycountry publishes it
(NL-NH Noord-Holland, DE-BY Bayern, CA-ON Ontario) and GeoNames' city names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NOW, table
from tests.stages import ingest
from tribes.ingest import IngestOptions, IngestSummary
from tribes.ingest.gazetteer import city_name
from tribes.ingest.refdata import region_name
from tribes.ingest.standardize import Spelling, place
from tribes.store.db import init_workspace
from tribes.workspace import Workspace, open_workspace

HEADER = "timestamp,event_name,user_id,country,state,city\n"
# user -> (country, state, city) as written in the file
ROWS = {
    "u01": ("Netherlands", "NH", "Amsterdam"),
    "u02": ("US", "NH", "Manchester"),
    "u03": ("Germany", "BY", "München"),
    "u04": ("Canada", "ON", "toronto"),
    "u05": ("USA", "CA", "L.A."),
    "u06": ("USA", "NY", "NYC"),
    "u07": ("USA", "CA", "San Fran"),
    "u08": ("Russia", "", "St. Petersburg"),
    "u09": ("United States", "FL", "St. Petersburg"),
    "u10": ("Deutschland", "Bavaria", "Köln"),
    "u11": ("the netherlands", "noord-holland", "AMSTERDAM"),
    "u12": ("Germany", "Zentralbayern", "Old Town"),
    "u13": ("", "NY", "Paris"),
    "u14": ("Narnia", "NH", "Cair Paravel"),
    "u15": ("Canada", "Ontario", "nyc"),
}
# user -> (country, region, city) as stored
EXPECTED = {
    "u01": ("Netherlands", "Noord-Holland", "Amsterdam"),
    "u02": ("United States", "New Hampshire", "Manchester"),
    "u03": ("Germany", "Bayern", "Munich"),
    "u04": ("Canada", "Ontario", "Toronto"),
    "u05": ("United States", "California", "Los Angeles"),
    "u06": ("United States", "New York", "New York City"),
    # no alternate name of San Francisco covers it: kept, reported
    "u07": ("United States", "California", "San Fran"),
    # "St." reads as Saint: Russia's city is Saint Petersburg, Florida's St. Petersburg
    "u08": ("Russian Federation", None, "Saint Petersburg"),
    "u09": ("United States", "Florida", "St. Petersburg"),
    "u10": ("Germany", "Bayern", "Köln"),
    "u11": ("Netherlands", "Noord-Holland", "Amsterdam"),
    # unknown in a known country: tidied text, reported
    "u12": ("Germany", "Zentralbayern", "Old Town"),
    # no country on the row: a region code is read as a US state
    "u13": (None, "New York", "Paris"),
    # a country ISO does not know: its region is not guessed
    "u14": ("Narnia", "NH", "Cair Paravel"),
    # an abbreviation counts only when written in capitals
    "u15": ("Canada", "Ontario", "Nyc"),
}


def csv(rows: dict[str, tuple[str, ...]], header: str = HEADER) -> str:
    lines = [f"2026-03-04T10:{i:02d}:00Z,page_view,{u}," + ",".join(r)
             for i, (u, r) in enumerate(rows.items())]
    return header + "\n".join(lines) + "\n"


def stored(ws: Workspace) -> dict[str, tuple[Any, ...]]:
    """user of ROWS -> stored (country, region, city) (rows are in ts order; ids are
    pseudonyms)."""
    ev = table(ws, "events").sort_values("ts")
    places = ev[["country", "region", "city"]].astype(object).where(ev.notna(), None)
    return dict(zip(ROWS, map(tuple, places.itertuples(index=False)), strict=True))


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, IngestSummary]:
    """The rows above, ingested once."""
    path = tmp_path_factory.mktemp("places")
    ws = init_workspace(path / "ws")
    (path / "e.csv").write_text(csv(ROWS))
    s = ingest(ws, [str(path / "e.csv")], IngestOptions(now=NOW, source="web"))
    assert s.loaded == len(ROWS)
    return ws, s


def test_regions_and_cities_are_read_within_their_country(batch) -> None:
    ws, _ = batch
    assert stored(ws) == EXPECTED


def test_values_the_references_do_not_know_are_reported(batch) -> None:
    _, s = batch
    assert s.unmatched == {
        "country": {"distinct": 1, "examples": ["Narnia"], "reference": "ISO 3166-1 countries",
                    "map_with": '[standardize.country] "Narnia" = "..."'},
        "region": {"distinct": 2, "examples": ["NH", "Zentralbayern"],
                   "reference": "ISO 3166-2 subdivisions",
                   "map_with": '[standardize.region] "NH" = "..."'},
        "city": {"distinct": 4, "examples": ["Cair Paravel", "Nyc", "Old Town"],
                 "reference": "GeoNames cities",
                 "map_with": '[standardize.city] "Cair Paravel" = "..."'},
    }


def test_without_a_country_column_regions_are_us_states(ws, write) -> None:
    rows = {"u1": ("NH", "München"), "u2": ("Bayern", "NYC"), "u3": ("tx", "Paris")}
    text = csv(rows, header="timestamp,event_name,user_id,state,city\n")
    s = ingest(ws, [str(write("e.csv", text))], IngestOptions(now=NOW, source="web"))
    ev = table(ws, "events").sort_values("ts")
    assert list(zip(ev.region, ev.city, strict=True)) == [
        ("New Hampshire", "Munich"),
        # no country: a region outside the US is unknown, and an abbreviation names no city
        ("Bayern", "NYC"),
        # the most populous Paris
        ("Texas", "Paris"),
    ]
    assert {c: u["examples"] for c, u in s.unmatched.items()} == {
        "region": ["Bayern"], "city": ["NYC"]}


def test_the_users_map_wins_and_the_cli_tells_what_it_did_not_match(tmp_path: Path, write,
                                                                     cli) -> None:
    path = tmp_path / "w"
    init_workspace(path)
    with (path / "tribes.toml").open("a") as fh:
        fh.write('\n[standardize.city]\n"san fran" = "San Francisco"\n"München" = "Minga"\n'
                 '\n[standardize.country]\n"Narnia" = "Netherlands"\n'
                 '\n[standardize.region]\n"Zentralbayern" = "Oberbayern"\n')
    ws = open_workspace(path)
    r = cli("--workspace", path, "ingest", write("e.csv", csv(ROWS)), "--source", "web")
    assert r.code == 0, r.err
    got = stored(ws)
    assert got["u07"] == ("United States", "California", "San Francisco")
    assert got["u03"] == ("Germany", "Bayern", "Minga")
    # the country is standardized first, the user's map included: NH in the Netherlands
    assert got["u14"] == ("Netherlands", "Noord-Holland", "Cair Paravel")
    assert got["u12"] == ("Germany", "Oberbayern", "Old Town")
    out = " ".join(r.out.split())
    assert ('unmatched: 3 city value(s) unknown to GeoNames cities (Cair Paravel, Nyc, '
            'Old Town); map them in tribes.toml: [standardize.city] "Cair Paravel" = "..."'
            in out)
    assert "region value" not in out and "country value" not in out


def test_many_pairs_are_looked_up_with_a_join(ws, write) -> None:
    """More distinct (country, region) pairs than a literal map holds."""
    codes = ["NH", "NY", "CA", "TX", "FL", "WA", "MA", "IL", "OH", "GA", "NC", "MI", "NJ",
             "VA", "AZ", "TN", "IN", "MO", "MD", "WI", "CO", "MN", "SC", "AL", "LA", "KY"]
    rows = {f"us{c}": ("US", c, "") for c in codes}
    rows |= {"nl1": ("NL", "NH", ""), "nl2": ("NL", "ZH", ""), "nl3": ("NL", "UT", ""),
             "de1": ("DE", "BY", ""), "de2": ("DE", "BE", ""), "de3": ("DE", "NW", ""),
             "ca1": ("CA", "ON", ""), "ca2": ("CA", "QC", ""), "ca3": ("CA", "BC", "")}
    ingest(ws, [str(write("e.csv", csv(rows)))], IngestOptions(now=NOW, source="web"))
    ev = table(ws, "events").sort_values("ts")
    got = dict(zip(rows, ev.region, strict=True))
    assert (got["usNH"], got["usLA"], got["usCA"], got["usIN"]) == (
        "New Hampshire", "Louisiana", "California", "Indiana")
    assert (got["nl1"], got["nl2"], got["nl3"]) == ("Noord-Holland", "Zuid-Holland", "Utrecht")
    assert (got["de1"], got["de2"], got["de3"]) == ("Bayern", "Berlin", "Nordrhein-Westfalen")
    assert (got["ca1"], got["ca2"], got["ca3"]) == ("Ontario", "Quebec", "British Columbia")


@pytest.mark.parametrize(("value", "country", "expected"), [
    ("NH", "NL", "Noord-Holland"), ("NL-NH", "NL", "Noord-Holland"),
    ("NH", "US", "New Hampshire"), ("Fla.", "US", "Florida"),
    ("BY", "DE", "Bayern"), ("bavaria", "DE", "Bayern"),
    ("ON", "CA", "Ontario"), ("Québec", "CA", "Quebec"),
    ("CT", "ES", "Catalunya"), ("Cataluña", "ES", "Catalunya"),
    ("13", "JP", "Tokyo"), ("Zentralbayern", "DE", None), ("NH", "DE", None),
])
def test_regions_of_a_country(value: str, country: str, expected: str | None) -> None:
    assert region_name(value, country) == expected


@pytest.mark.parametrize(("value", "country", "expected"), [
    ("München", "DE", "Munich"), ("München", None, "Munich"),
    ("L.A.", "US", "Los Angeles"), ("L.A.", None, None), ("la", "US", None),
    ("NYC", "US", "New York City"), ("New York", None, "New York City"),
    ("Paris", "US", "Paris"), ("Paris", "CA", None), ("Frisco", "US", "Frisco"),
    ("Bombay", None, "Mumbai"), ("Ft. Worth", "US", "Fort Worth"),
    ("ABC", None, None), ("ABC", "ES", "Albacete"), ("San Fran", "US", None),
])
def test_cities_in_the_gazetteer(value: str, country: str | None, expected: str | None) -> None:
    assert city_name(value, country) == expected


def test_place_without_a_country_and_with_one_iso_does_not_know() -> None:
    assert place("region", "NH") == Spelling("New Hampshire")
    assert place("region", "nh", country="?") == Spelling("Nh", found=False)
    assert place("city", "Paris", country="?").value == "Paris"
    assert place("city", "n/a", country="FR").value is None
