import pytest

from tribes.config import PrivacyConfig
from tribes.errors import InputError, MissingColumnError
from tribes.ingest.mapping import parse_map_option, resolve_mapping, squash
from tribes.ingest.spec import CONSENTS, CUSTOMERS, EVENTS

PII = PrivacyConfig().pii_columns


def test_auto_detects_common_spellings_and_keeps_the_rest() -> None:
    cols = ["eventTime", "Event Name", "userId", "cookie", "Revenue", "page_url", "Email", "IP"]
    m = resolve_mapping(cols, EVENTS, {}, PII)
    assert m.targets == {"ts": "eventTime", "event_type": "Event Name",
                         "customer_id": "userId", "anonymous_id": "cookie",
                         "amount": "Revenue"}
    assert m.pii == {"Email": "hash", "IP": "drop"}
    assert m.extra == ("page_url",)


def test_explicit_map_wins_and_frees_the_auto_column() -> None:
    cols = ["sold_at", "timestamp", "member_no", "amount"]
    m = resolve_mapping(cols, EVENTS, {"ts": "sold_at", "customer_id": "member_no"}, PII)
    assert m.targets["ts"] == "sold_at"
    assert "timestamp" in m.extra
    assert "ts" not in m.auto


def test_missing_required_column_suggests_the_closest() -> None:
    with pytest.raises(MissingColumnError) as err:
        resolve_mapping(["timestmp", "user_id", "event"], EVENTS, {}, PII)
    assert "did you mean 'timestmp'" in str(err.value)
    assert "--map ts=timestmp" in str(err.value)
    assert err.value.code == "E_MISSING_COLUMN"


def test_no_identifier_column_is_an_error() -> None:
    with pytest.raises(InputError, match="no identifier column"):
        resolve_mapping(["ts", "event_type"], EVENTS, {}, PII)


def test_bad_map_targets_and_sources() -> None:
    with pytest.raises(InputError, match="did you mean 'customer_id'"):
        resolve_mapping(["ts", "uid"], EVENTS, {"custmer_id": "uid"}, PII)
    with pytest.raises(InputError, match="not in the input"):
        resolve_mapping(["ts", "uid"], EVENTS, {"customer_id": "nope"}, PII)
    with pytest.raises(InputError, match="target=source"):
        parse_map_option(["ts"])


def test_parse_map_option_accepts_commas_and_repeats() -> None:
    assert parse_map_option(["ts=sold_at,customer_id=member_no", "amount = total"]) == {
        "ts": "sold_at", "customer_id": "member_no", "amount": "total"}


def test_customers_and_consents_specs() -> None:
    m = resolve_mapping(["member_no", "signup_date", "State", "email"], CUSTOMERS, {}, PII)
    assert m.targets == {"customer_id": "member_no", "signup_ts": "signup_date",
                         "region": "State"}
    m = resolve_mapping(["customer_id", "purpose", "granted", "ts"], CONSENTS, {}, PII)
    assert set(m.targets) == {"customer_id", "purpose", "granted", "ts"}


def test_squash() -> None:
    assert squash("User ID") == squash("user_id") == squash("userId") == "userid"
