"""Segmentation at scale: 1M customers x 12 features, KMeans with k chosen over 2-10.

Builds a workspace whose ``customer_features`` table holds synthetic customers drawn from
planted groups (cached between runs), then runs ``tribes segment`` in a fresh process and
prints its time and peak RSS, the k it chose, and the adjusted Rand index against the
planted groups (read back from the stored assignments).

    python benchmarks/bench_segment.py                    # 1M customers
    python benchmarks/bench_segment.py --customers 100000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure_isolated

from tribes.store.db import open_engine

FEATURES = ["recency_days", "tenure_days", "frequency", "monetary", "aov", "sessions_per_week",
            "events_per_session", "avg_session_duration_s", "distinct_categories",
            "cart_abandonment_rate", "support_contacts", "engagement_score"]
GROUPS = 6


def build(data: Path, customers: int, seed: int = 5) -> Path:
    """A workspace with ``customers`` rows of planted groups in customer_features."""
    import ibis

    from tribes.store.db import init_workspace

    ws_path = data / f"seg-{customers}"
    marker = ws_path / ".bench-built"
    if marker.exists():
        return ws_path
    shutil.rmtree(ws_path, ignore_errors=True)
    print(f"building {customers:,} customers x {len(FEATURES)} features ...", flush=True)
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-2.5, 2.5, size=(GROUPS, len(FEATURES)))
    group = rng.integers(0, GROUPS, customers)
    z = centers[group] + rng.normal(0, 0.45, size=(customers, len(FEATURES)))
    # back to feature scales: money and counts log-normal, shares in [0, 1]
    cols = {}
    for j, f in enumerate(FEATURES):
        if f in ("cart_abandonment_rate",):
            cols[f] = 1 / (1 + np.exp(-z[:, j]))
        elif f in ("recency_days", "tenure_days", "engagement_score"):
            cols[f] = 60 + 25 * z[:, j]
        else:
            cols[f] = np.expm1(np.exp(0.4 * z[:, j] + 1.0))
    df = pd.DataFrame(cols)
    df.insert(0, "customer_key", [f"c{i:08d}" for i in range(customers)])
    ws = init_workspace(ws_path)
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
    pd.DataFrame({"customer_key": df.customer_key, "group": group}).to_parquet(
        ws_path / "truth.parquet")
    marker.touch()
    return ws_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    ws = build(args.data, args.customers)
    run = measure_isolated([sys.executable, "-m", "tribes", "-w", str(ws), "--json",
                            "segment", "--k", "auto", "--k-range", "2-10",
                            "--features", ",".join(FEATURES)])
    out = json.loads(run.stdout.splitlines()[-1])

    import duckdb
    from sklearn.metrics import adjusted_rand_score

    con = duckdb.connect(str(ws / "tribes.duckdb"), read_only=True)
    got = con.execute("SELECT customer_key, segment_id FROM segment_assignments "
                      "WHERE version = ?", [out["version"]]).df()
    truth = pd.read_parquet(ws / "truth.parquet")
    m = got.merge(truth, on="customer_key")
    ari = adjusted_rand_score(m["group"], m["segment_id"])
    stab = out["metrics"].get("stability", {})
    print(f"\n{out['n_customers']:,} customers x {len(FEATURES)} features, kmeans, "
          f"k auto over 2-10")
    print(f"seconds (fresh process)  : {run.seconds:.1f}")
    print(f"peak RSS                 : {run.peak_rss_mib:.0f} MiB")
    print(f"chosen k                 : {out['k']} (planted {GROUPS}); votes "
          f"{out['metrics']['k_selection']['votes']}")
    print(f"ARI vs planted groups    : {ari:.3f}")
    print(f"bootstrap stability ARI  : {stab.get('ari_mean', float('nan')):.3f}")


if __name__ == "__main__":
    main()
