"""tribes activate: changes since the last sync reach a CRM exactly (signed, batched,
idempotent), consent and erasure are honoured, a failed sync resumes, files get a
manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import CliResult
from tests.sync.conftest import SECRET
from tribes.store.db import open_engine
from tribes.workspace import open_workspace


def configure(ws: Path, url: str, batch_size: int = 40) -> None:
    cfg = ws / "tribes.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + f"""
[activation.crm]
url = "{url}"
batch_size = {batch_size}
backoff = "0.01s"
max_attempts = 3

[activation.lake]
kind = "file"
path = "exports/lake"
format = "csv"
""", encoding="utf-8")


def members(ws: Path, segments: list[int] | None = None) -> dict[str, int]:
    """The active version's members: what the CRM must end up holding."""
    w = open_workspace(ws)
    with open_engine(w, read_only=True) as engine:
        from tribes.store.segments import active_segments

        df = engine.execute(active_segments(engine))
    if segments:
        df = df[df.segment_id.isin(segments)]
    return dict(zip(df.customer_key, df.segment_id.astype(int), strict=True))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBES_ACTIVATION_SECRET", SECRET)


def test_sync_sends_changes_only_and_exactly(shop, crm, env,
                                             cli: Callable[..., CliResult]) -> None:
    ws, _ = shop
    url, state = crm
    configure(ws, url)
    dry = cli("-w", ws, "activate", "--target", "crm", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["upserts"] == len(members(ws)) and state.requests == 0
    first = cli("-w", ws, "activate", "--target", "crm", "--json").json()
    assert first["status"] == "done" and first["batches"] > 1
    assert state.members == members(ws) and state.bad_signatures == 0
    # nothing changed: nothing sent
    again = cli("-w", ws, "activate", "--target", "crm", "--json").json()
    assert again["status"] == "nothing" and again["upserts"] == again["removals"] == 0
    # one customer refuses marketing: removed, and never sent again
    who = sorted(state.members)[0]  # consents name customers by pseudonymized id
    w = open_workspace(ws)
    with open_engine(w) as engine:
        import ibis

        from tribes.store.tables import CONSENTS

        engine.insert("consents", ibis.memtable(pd.DataFrame([{
            "consent_id": "c-test", "customer_id": who, "purpose": "marketing",
            "granted": False, "ts": pd.Timestamp.now(tz="UTC"),
            "ingested_at": pd.Timestamp.now(tz="UTC"), "batch_id": "test"}])).cast(CONSENTS))
    out = cli("-w", ws, "activate", "--target", "crm", "--json").json()
    assert out["removals"] == 1 and out["upserts"] == 0
    assert who not in state.members
    hist = cli("-w", ws, "activate-history", "--json").json()["syncs"]
    assert [h["status"] for h in hist] == ["done", "nothing", "done"]


def test_only_the_chosen_segments(shop, crm, env, cli: Callable[..., CliResult]) -> None:
    ws, _ = shop
    url, state = crm
    configure(ws, url)
    r = cli("-w", ws, "activate", "--target", "crm", "--segments", "0,2", "--json")
    assert r.code == 0, r.err
    assert state.members == members(ws, [0, 2])
    bad = cli("-w", ws, "activate", "--target", "crm", "--segments", "9")
    assert bad.code != 0 and "no segment [9]" in (bad.err + bad.out)
    missing = cli("-w", ws, "activate", "--target", "nope")
    assert missing.code != 0 and "[activation.nope]" in (missing.err + missing.out)


def test_a_failed_sync_resumes_without_loss_or_repeat(shop, crm, env,
                                                      cli: Callable[..., CliResult]) -> None:
    ws, _ = shop
    url, state = crm
    configure(ws, url, batch_size=30)
    state.fail_next = 2  # two 503s: retried within the run
    state.fail_batch = 3  # batch 3 refused every time: the run stops there
    r = cli("-w", ws, "activate", "--target", "crm", "--json")
    assert r.code == 4
    out = r.json()
    assert out["status"] == "partial" and out["delivered"] == 2
    assert len(state.members) == 60  # two batches of 30
    state.fail_batch = None
    done = cli("-w", ws, "activate", "--target", "crm", "--json").json()
    assert done["status"] == "done" and done["upserts"] == len(members(ws)) - 60
    assert state.members == members(ws)
    assert len(state.keys) == len(set(state.keys))  # no batch applied twice


def test_an_erased_customer_is_removed_at_the_next_sync(shop, crm, env,
                                                        cli: Callable[..., CliResult]
                                                        ) -> None:
    ws, _ = shop
    url, state = crm
    configure(ws, url)
    assert cli("-w", ws, "activate", "--target", "crm").code == 0
    who = next(k for k in sorted(state.members) if not k.startswith("anon:"))
    assert cli("-w", ws, "forget", who, "--reason", "request").code == 0
    w = open_workspace(ws)
    with open_engine(w, read_only=True) as engine:
        owed = engine.execute(engine.table("activation_removals"))
        assert list(owed["id"]) == [who]
    out = cli("-w", ws, "activate", "--target", "crm", "--json").json()
    assert out["removals"] == 1 and who not in state.members
    with open_engine(w, read_only=True) as engine:
        assert engine.execute(engine.table("activation_removals")).empty


def test_file_target_writes_changes_with_a_manifest(shop, env,
                                                    cli: Callable[..., CliResult]) -> None:
    ws, _ = shop
    configure(ws, "http://127.0.0.1:9/unused")
    first = cli("-w", ws, "activate", "--target", "lake", "--json").json()
    folder = Path(first["location"])
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["delta"] and manifest["since"] is None
    for f in manifest["files"]:
        body = (folder / f["name"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == f["sha256"]
        assert len(pd.read_csv(folder / f["name"])) == f["rows"]
    ups = pd.read_csv(folder / "upserts.csv")
    assert dict(zip(ups.customer_key, ups.segment_id, strict=True)) == members(ws)
    # the next export holds the changes only: none
    second = cli("-w", ws, "activate", "--target", "lake", "--json").json()
    m2 = json.loads((Path(second["location"]) / "manifest.json").read_text(encoding="utf-8"))
    assert m2["since"] == manifest["sync_id"]
    assert [f["rows"] for f in m2["files"]] == [0, 0]
    full = cli("-w", ws, "activate", "--target", "lake", "--full", "--json").json()
    assert (Path(full["location"]) / "members.csv").exists()
    # the files are known exports: an erasure lists the ones holding the person
    w = open_workspace(ws)
    with open_engine(w, read_only=True) as engine:
        x = engine.execute(engine.table("exports"))
    assert (x["what"] == "activation:lake").sum() == 3
    who = next(k for k in ups.customer_key if not k.startswith("anon:"))
    gone = cli("-w", ws, "forget", who, "--json").json()
    assert {e["what"] for e in gone["exports"]} == {"activation:lake"}
