"""The Python API: the worked example of docs/python-api.md runs as written, and each
method gives what the CLI command of the same name gives (``--json``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import tribes

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import os

    where = tmp_path_factory.mktemp("api")
    here = Path.cwd()
    os.chdir(where)
    try:
        ns: dict[str, Any] = {}
        for block in _blocks():
            exec(compile(block, str(DOC), "exec"), ns)
    finally:
        os.chdir(here)
    ns["where"] = where
    return ns


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative (a parallel sum may differ in its last bit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float | int):
        return b == pytest.approx(a, rel=1e-9)
    return bool(a == b)


def test_the_worked_example_runs_and_says_what_it_shows(example: dict[str, Any]) -> None:
    events = example["events"]
    assert example["loaded"]["rows_read"] == len(events) == example["loaded"]["loaded"]
    features = example["features"]
    # one row per customer, counted from the generated events
    assert len(features) == events.user_id.nunique() == 300
    buys = events[events.event == "purchase"].groupby("user_id").size()
    got = features.set_index("customer_key").frequency
    assert sorted(got[got > 0].astype(int)) == sorted(buys)  # keys are pseudonyms
    assert len(example["personas"]) == 3 and example["seg"]["k"] == 3
    steps = example["steps"]
    views = events[events.event == "product_view"].user_id.nunique()
    assert list(steps.step) == ["product_view", "add_to_cart", "purchase"]
    assert int(steps["count"].iloc[0]) == views
    assert example["retention"].to_pandas().columns[:2].tolist() == ["cohort", "size"]
    assert set(example["scores"].columns) >= {"customer_key", "p_alive", "clv"}
    assert (example["where"] / "report.html").stat().st_size > 100_000
    assert "personas" in example["report"]["sections"]


def test_methods_give_what_the_commands_give(example: dict[str, Any], cli) -> None:
    shop = example["where"] / "shop"
    ws = tribes.open(shop)
    r = cli("-w", shop, "journeys", "funnel", "--steps", "product_view,add_to_cart,purchase",
            "--window", "1h", "--json")
    assert _same(r.json(), _plain(example["funnel"].summary))
    r = cli("-w", shop, "cohorts", "retention", "--period", "month", "--returned",
            "purchase", "--json")
    assert _same(r.json(), _plain(example["retention"].summary))
    r = cli("-w", shop, "status", "--json")
    mine = _plain(ws.status().summary)
    assert r.json()["ingest_totals"] == mine["ingest_totals"]
    assert r.json()["tables"] == mine["tables"]


def test_results_convert_and_show(example: dict[str, Any]) -> None:
    ws = tribes.open(example["where"] / "shop")
    table = ws.table("customer_features")
    assert len(table) == 300 and "recency_days" in table.columns
    assert table.to_pyarrow().num_rows == 300
    assert "<table" in table._repr_html_()
    funnel = example["funnel"]
    assert funnel.to_pyarrow().num_rows == 3
    assert "plotly" in funnel._repr_html_()
    assert funnel.figure().data[0].type == "funnel"
    assert example["retention"].figure().data[0].type == "heatmap"
    with pytest.raises(tribes.errors.TribesError) as err:
        ws.table("no_such_table").to_pandas()
    assert err.value.code == "E_NO_TABLE"


def test_import_tribes_stays_light() -> None:
    import subprocess
    import sys

    code = ("import sys, tribes; assert 'tribes.api' not in sys.modules; "
            "assert 'pandas' not in sys.modules; tribes.open; "
            "assert 'tribes.api' in sys.modules; print(sorted(tribes.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "Workspace" in out.stdout and "open" in out.stdout


def test_the_api_reference_is_current() -> None:
    """docs/api-reference.md is generated from the docstrings: run
    python scripts/api_reference.py after changing the API."""
    import importlib.util

    script = DOC.parents[1] / "scripts" / "api_reference.py"
    spec = importlib.util.spec_from_file_location("api_reference", script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (DOC.parent / "api-reference.md").read_text(encoding="utf-8") == mod.render()
    assert "(no description)" not in mod.render()


def test_a_segment_version_lists_its_customers(example: dict[str, Any]) -> None:
    ws = tribes.open(example["where"] / "shop")
    members = ws.segments().to_pandas()
    assert len(members) == 300 and members.customer_key.is_unique
    names = dict(zip(example["personas"].segment_id, example["personas"].name, strict=True))
    assert set(members.segment_name) == set(names.values())
    sizes = members.groupby("segment_id").size().to_dict()
    assert sizes == dict(zip(example["personas"].segment_id, example["personas"]["size"],
                             strict=True))
