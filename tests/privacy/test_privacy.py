"""Raw identifiers and personal data never reach the workspace database."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import NOW
from tests.stages import ingest
from tribes.ingest import IngestOptions
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import open_workspace

SECRETS = ["alice.secret@example.com", "+1-555-0199-777", "Alicia Zzyzx", "203.0.113.77",
           "CUST-RAW-0042", "cookie-raw-9f8e7d"]

EVENTS = f"""timestamp,event_name,user_id,cookie_id,email,phone,name,ip,page
2026-03-04T10:15:02Z,page_view,{SECRETS[4]},{SECRETS[5]},{SECRETS[0]},{SECRETS[1]},{SECRETS[2]},{SECRETS[3]},/home
not-a-date,page_view,{SECRETS[4]},{SECRETS[5]},{SECRETS[0]},{SECRETS[1]},{SECRETS[2]},{SECRETS[3]},/bad
2026-03-04T10:15:02Z,page_view,{SECRETS[4]},{SECRETS[5]},{SECRETS[0]},{SECRETS[1]},{SECRETS[2]},{SECRETS[3]},/x,extra
"""
CUSTOMERS = f"""customer_id,email,first_name,last_name,phone,country
{SECRETS[4]},{SECRETS[0]},Alicia,Zzyzx,{SECRETS[1]},US
,{SECRETS[0]},Alicia,Zzyzx,{SECRETS[1]},US
"""


@pytest.fixture
def uncompressed_ws(tmp_path: Path):
    path = tmp_path / "ws"
    init_workspace(path)
    # no compression, so a raw string in the file would be visible byte for byte
    with (path / "tribes.toml").open("a") as fh:
        fh.write('\n[engine.duckdb]\nforce_compression = "uncompressed"\n')
    return open_workspace(path)


def test_raw_pii_and_ids_appear_nowhere_in_the_database_file(uncompressed_ws, write) -> None:
    ws = uncompressed_ws
    ingest(ws, [str(write("e.csv", EVENTS))], IngestOptions(source="web", now=NOW))
    ingest(ws, [str(write("c.csv", CUSTOMERS))], IngestOptions(kind="customers", now=NOW))
    with open_engine(ws) as engine:
        assert int(engine.scalar(engine.table("events").count())) == 1
        assert int(engine.scalar(engine.table("quarantine").count())) == 3
        engine.checkpoint()
    # the parse spool (raw values) is gone once the batch is done
    assert not list((ws.path / ".tmp").rglob("spool-*"))
    blobs = b"".join(p.read_bytes() for p in ws.path.glob("tribes.duckdb*"))
    assert len(blobs) > 100_000
    # the pseudonym is there (so the check can see strings at all), the raw values are not
    assert pseudonym(SECRETS[4], ws.secret()).encode() in blobs
    for raw in [*SECRETS, "Alicia", "Zzyzx"]:
        for enc in ("utf-8", "utf-16-le"):
            assert raw.encode(enc) not in blobs, raw
    assert b"/home" in blobs  # ordinary properties are kept


def test_secret_key_file_is_private_and_env_overrides(tmp_path: Path, monkeypatch) -> None:
    ws = init_workspace(tmp_path / "w")
    mode = stat.S_IMODE(os.stat(ws.path / "secret.key").st_mode)
    assert mode == 0o600
    key = ws.secret()
    assert len(key) == 64
    init_workspace(tmp_path / "w")  # re-init keeps the key
    assert ws.secret() == key
    monkeypatch.setenv("TRIBES_SECRET", "from-env")
    assert ws.secret() == b"from-env"


def test_missing_key_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    from tribes.errors import WorkspaceError

    ws = init_workspace(tmp_path / "w")
    (ws.path / "secret.key").unlink()
    with pytest.raises(WorkspaceError) as err:
        ws.secret()
    assert err.value.code == "E_SECRET"


def test_latest_consent_decides(ws, write) -> None:
    from tribes.privacy.consent import excluded_customers

    text = ("customer_id,purpose,granted,ts\n"
            "a,analytics,yes,2026-01-01\na,analytics,no,2026-02-01\n"
            "b,analytics,no,2026-01-01\nb,analytics,yes,2026-03-01\n"
            "c,marketing,no,2026-01-01\n")
    ingest(ws, [str(write("k.csv", text))], IngestOptions(kind="consents", now=NOW))
    key = ws.secret()
    with open_engine(ws) as engine:
        consents = engine.table("consents")
        known = consents.select("customer_id")
        out = set(engine.execute(excluded_customers(consents, known, "opt-out")).customer_id)
        assert out == {pseudonym("a", key)}
        out = set(engine.execute(excluded_customers(consents, known, "opt-in")).customer_id)
        assert out == {pseudonym("a", key), pseudonym("c", key)}
