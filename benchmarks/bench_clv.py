"""CLV at scale: purchase histories simulated from a BG/NBD with known parameters, taken
through ``tribes ingest``, then ``clv fit`` (each model) and ``clv score``.

Prints, per step, the time and peak RSS of a fresh process, and how close the fitted
BG/NBD and Gamma-Gamma parameters come to the planted ones; for a baseline it times the
same BG/NBD fit on the same summary with the summary already in memory (the likelihood
alone, no engine), side by side.

    python benchmarks/bench_clv.py                       # 100k customers
    python benchmarks/bench_clv.py --customers 20000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure_isolated

from tribes.store.db import open_engine

PLANTED = {"r": 0.8, "alpha": 6.0, "a": 0.9, "b": 3.5}
SPEND = {"p": 6.0, "q": 4.0, "gamma": 15.0}
START = pd.Timestamp("2025-01-01", tz="UTC")
WEEKS = 78  # observed; acquisition in the first 12


def simulate(n: int, seed: int = 5) -> pd.DataFrame:
    """One row per purchase: customer, time, amount."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(PLANTED["r"], 1 / PLANTED["alpha"], n)
    p = rng.beta(PLANTED["a"], PLANTED["b"], n)
    nu = rng.gamma(SPEND["q"], 1 / SPEND["gamma"], n)
    t0 = rng.uniform(0, 12, n)
    k = 60  # enough repeat purchases for anyone at these rates within 78 weeks
    times = t0[:, None] + np.cumsum(rng.exponential(1.0, (n, k)) / lam[:, None], axis=1)
    dies_at = rng.geometric(p)  # the repeat purchase after which the customer drops out
    keep = (times <= WEEKS) & (np.arange(1, k + 1)[None, :] <= dies_at[:, None])
    rows, cols = np.nonzero(keep)
    t = np.concatenate([t0, times[rows, cols]])
    cust = np.concatenate([np.arange(n), rows])
    amount = rng.gamma(SPEND["p"], 1 / nu[cust])
    ts = START + pd.to_timedelta(t * 7 * 86400, unit="s")
    return pd.DataFrame({"customer_id": [f"C{c:07d}" for c in cust], "ts": ts,
                         "amount": amount.round(2)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    root = args.data / f"clv-{args.customers}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    print(f"simulating {args.customers:,} customers (BG/NBD {PLANTED}) ...", flush=True)
    df = simulate(args.customers)
    df.to_parquet(root / "purchases.parquet")
    tribes = [sys.executable, "-m", "tribes", "-q"]
    ws = root / "ws"
    measure_isolated([*tribes, "init", str(ws)])
    runs = {"ingest": measure_isolated([*tribes, "-w", str(ws), "ingest",
                                        str(root / "purchases.parquet"), "--source", "pos",
                                        "--event-type", "purchase"])}
    fits = {}
    for model in ("bgnbd", "mbgnbd", "pareto_nbd"):
        r = measure_isolated([*tribes, "-w", str(ws), "--json", "clv", "fit", "--model", model])
        runs[f"fit {model}"], fits[model] = r, json.loads(r.stdout.splitlines()[-1])
    measure_isolated([*tribes, "-w", str(ws), "clv", "fit", "--model", "bgnbd"])
    runs["score (52w)"] = measure_isolated([*tribes, "-w", str(ws), "clv", "score"])

    # baseline: the same fit with the summary in memory
    from tribes.models.clv.bgnbd import BGNBD
    from tribes.models.clv.clv_stage import data_end
    from tribes.models.clv.summary import SummarySpec, rfm_summary
    from tribes.workspace import open_workspace

    w = open_workspace(ws)
    with open_engine(w, read_only=True) as engine:
        summary = engine.execute(rfm_summary(engine, SummarySpec(data_end(engine))))
    t = time.perf_counter()
    base = BGNBD().fit(summary.frequency, summary.recency, summary["T"])
    base_s = time.perf_counter() - t

    print(f"\n{args.customers:,} customers, {len(df):,} purchases, {WEEKS} weeks")
    print(f"{'step':<18}{'seconds':>9}{'peak RSS MiB':>14}")
    for name, r in runs.items():
        print(f"{name:<18}{r.seconds:>9.1f}{r.peak_rss_mib:>14.0f}")
    print(f"{'BG/NBD in memory':<18}{base_s:>9.1f}{'':>14}  (likelihood only, same summary)")
    b = fits["bgnbd"]
    print("\nplanted vs fitted (all purchases; standard errors from the Hessian)")
    for k, v in PLANTED.items():
        print(f"  bgnbd {k:<6} {v:>7.3f}  {b['params'][k]:>7.3f} ± {b['se'][k] or 0:.3f}")
    for k, v in SPEND.items():
        print(f"  gamma {k:<6} {v:>7.3f}  {b['spend_params'][k]:>7.3f} ± "
              f"{b['spend_se'][k] or 0:.3f}")
    for model, f in fits.items():
        h = f["holdout"]
        print(f"  {model:<11} log-lik {f['loglik']:>12,.1f}; holdout {h['actual']:,.0f} "
              f"actual, {h['predicted']:,.0f} predicted ({h['error_pct']:+.1%})")
    print(f"  in-memory BG/NBD params {({k: round(v, 3) for k, v in base.params_.items()})}")


if __name__ == "__main__":
    main()
