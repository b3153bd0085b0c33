import pytest

from tribes.ingest.standardize import canonical, canonical_event_type, mapping_for, snake_case


@pytest.mark.parametrize("raw", ["NY", "ny", "N.Y.", "new york", "New York", " New  York "])
def test_new_york_spellings_become_one(raw: str) -> None:
    assert canonical("region", raw) == "New York"


@pytest.mark.parametrize(("raw", "expected"), [
    ("US", "United States"), ("USA", "United States"), ("u.s.a.", "United States"),
    ("United States of America", "United States"), ("gb", "United Kingdom"),
    ("UK", "United Kingdom"), ("DEU", "Germany"), ("Deutschland", "Germany"),
    ("Côte d'Ivoire", "Côte d'Ivoire"), ("narnia", "Narnia"),
])
def test_countries(raw: str, expected: str) -> None:
    assert canonical("country", raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("Add To Cart", "add_to_cart"), ("addToCart", "add_to_cart"), ("add-to-cart", "add_to_cart"),
    ("Page View", "page_view"), ("pageview", "page_view"), ("Order Completed", "purchase"),
    ("  ", None), ("null", None),
])
def test_event_types(raw: str, expected: str | None) -> None:
    assert canonical_event_type(raw, {}) == expected


def test_configured_aliases_and_user_maps_win() -> None:
    assert canonical_event_type("Refund Issued", {"refund_issued": "refund"}) == "refund"
    assert canonical("city", "NYC", {"nyc": "New York"}) == "New York"
    assert canonical("city", "n.y.c.", {"NYC": "New York"}) == "New York"


def test_cities_and_other_categoricals() -> None:
    assert canonical("city", "  san   FRANCISCO") == "San Francisco"
    assert canonical("city", "McAllen") == "McAllen"
    assert canonical("channel", "Paid Search") == "paid_search"
    assert snake_case("__Foo  Bar__") == "foo_bar"


def test_mapping_for_skips_nulls() -> None:
    assert mapping_for("region", ["NY", None, "tx"]) == {"NY": "New York", "tx": "Texas"}


@pytest.mark.parametrize(("raw", "expected"), [("f", "female"), ("Female", "female"),
                                               ("M", "male"), ("male", "male"),
                                               ("Non-Binary", "non_binary"), ("d", "diverse"),
                                               ("prefer not to say", "prefer_not_to_say")])
def test_gender_spellings(raw: str, expected: str) -> None:
    assert canonical("gender", raw) == expected
