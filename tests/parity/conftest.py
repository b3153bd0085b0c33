"""One synthetic workspace built twice, on DuckDB and on PySpark (local mode), by the
same CLI commands in this process. Tests compare what the two stored and printed.

PySpark and Java are part of the test: missing, the suite fails under CI=true and is
skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tribes.cli import main
from tribes.store.db import init_workspace

CUSTOMERS, DAYS, SEED = 200, 60, 5
BACKENDS = ("duckdb", "pyspark")
SPARK_TOML = """
[engine]
backend = "pyspark"
spark_master = "local[2]"
[engine.spark]
"spark.sql.shuffle.partitions" = 2
"spark.default.parallelism" = 2
"""


def _spark_missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -e '.[spark]')"
    from tribes.engine.pyspark.session import _java_home

    _java_home()
    home = os.environ.get("JAVA_HOME")
    if not (home and Path(home, "bin", "java").exists()) and not shutil.which("java"):
        return "no Java runtime (JAVA_HOME or java on PATH)"
    return None


def require_spark() -> None:
    why = _spark_missing()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the parity suite needs PySpark on Java: {why}")
    pytest.skip(why)


@dataclass
class Built:
    root: Path
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ws(self, backend: str) -> Path:
        return self.root / f"ws_{backend}"


def _tribes(*args: str | Path) -> Any:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    text = out.getvalue()
    assert code == 0, f"tribes {' '.join(map(str, args))} exited {code}: {text[-2000:]}"
    lines = [ln for ln in text.strip().splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def _pipeline(ws: Path, data: Path, out: Path) -> dict[str, Any]:
    w = ("-q", "--workspace", ws)
    results: dict[str, Any] = {}
    steps: list[tuple[str, list[str | Path]]] = [
        ("ingest_web", ["ingest", data / "web", "--source", "web"]),
        ("ingest_app", ["ingest", data / "app", "--source", "app"]),
        ("ingest_pos", ["ingest", data / "purchases.parquet", "--source", "pos",
                        "--event-type", "purchase", "--map", "ts=sold_at,customer_id=member_no"]),
        ("ingest_customers", ["ingest", data / "customers.csv", "--kind", "customers"]),
        ("ingest_consents", ["ingest", data / "consents.csv", "--kind", "consents"]),
        ("reingest_web", ["ingest", data / "web", "--source", "web"]),
        ("run", ["run"]),
        ("segment", ["segment"]),
        ("clv_fit", ["clv", "fit"]),
        ("clv_score", ["clv", "score", "--horizon", "26w"]),
        ("cohort", ["cohorts", "define", "fast_buyers", "--rule",
                    "first purchase within 7 days of first event"]),
        ("funnel", ["journeys", "funnel", "--steps",
                    "product_view,add_to_cart,begin_checkout,purchase"]),
        ("cohort_seq", ["cohorts", "define", "cart_then_buy", "--rule",
                        "add_to_cart followed by purchase within 1 day and any purchase "
                        "with amount > 20 or in segment 1"]),
        ("transitions", ["journeys", "transitions"]),
        ("retention", ["cohorts", "retention"]),
        # cohorts refreshed and the weekly KPI table built by a run, then an append: the
        # next run's prep, features, cohorts and weekly table are incremental
        ("run_again", ["run"]),
        ("ingest_support", ["ingest", data / "support.csv", "--source", "support",
                            "--event-type", "support_contact", "--map",
                            "event_id=ticket_id,ts=created", "--ts-format", "%d/%m/%Y %H:%M"]),
        ("run_append", ["run"]),
        ("funnel_filtered", ["journeys", "funnel", "--steps",
                             "product_view where device = mobile,add_to_cart,purchase",
                             "--exclude", "support_contact between 1 and 3", "--window", "7d",
                             "--start", "any"]),
        ("export_segments", ["export", "segments", "--out", out / "segments.csv"]),
        ("export_features", ["export", "features", "--out", out / "features.parquet"]),
        # a past snapshot: the stored sessions cut at as_of (then compared as stored)
        ("features_past", ["features", "--as-of", "2026-02-10T12:00:00Z"]),
        # erasure last: every table it touches is then compared too
        ("forget", ["forget", "C0000007", "--reason", "parity"]),
    ]
    for name, args in steps:
        results[name] = _tribes(*w, *args, "--json")
    return results


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    require_spark()
    from tribes.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("parity")
    data = root / "data"
    generate(SynthConfig(out=data, customers=CUSTOMERS, days=DAYS, seed=SEED))
    b = Built(root)
    duck = init_workspace(b.ws("duckdb"))
    # the Spark workspace: its own configuration, and the same key (the same pseudonyms)
    spark_ws = b.ws("pyspark")
    spark_ws.mkdir()
    (spark_ws / "tribes.toml").write_text(SPARK_TOML, encoding="utf-8")
    shutil.copy(duck.path / "secret.key", spark_ws / "secret.key")
    init_workspace(spark_ws)
    for backend in BACKENDS:
        out = root / f"out_{backend}"
        out.mkdir()
        b.outputs[backend] = _pipeline(b.ws(backend), data, out)
    return b
