"""Journeys and cohorts at scale: transitions, a 4-step funnel (per customer, loose; per
session, strict), a funnel with step filters and an exclusion, an unordered funnel,
monthly (and recurring) retention and behavioral cohort rules (a sequence among them).

Uses the workspace ``benchmarks/bench_features.py`` builds (synthetic events, ingested,
prep run). Each tribes computation runs in a fresh process; a pandas baseline of the same
three computations (events loaded into memory once, load time printed separately) runs
side by side in the same script.

    python benchmarks/bench_analysis.py                    # 10M events
    python benchmarks/bench_analysis.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure_isolated
from bench_features import prepare

ROOT = Path(__file__).resolve().parents[1]

STEPS = "product_view,add_to_cart,begin_checkout,purchase"
RULE = "first purchase within 7 days of first event"
SEQUENCE = "add_to_cart followed by purchase within 1 day and any purchase with amount > 50"

# the child process imports the pandas reference (tests.features.reference) from the repo
PANDAS = f"import sys; sys.path.insert(0, {str(ROOT)!r})" + """
import sys, time, json, duckdb, numpy as np, pandas as pd
from tests.features.reference import key_events_reference, sessionize_reference
ws_db = sys.argv[1]
steps = sys.argv[2].split(",")
t0 = time.perf_counter()
con = duckdb.connect(ws_db, read_only=True)
con.execute("SET TimeZone = 'UTC'"); con.execute("SET enable_progress_bar = false")
ev = con.execute('''SELECT event_id, ts, event_type, customer_id, anonymous_id, device_id,
  amount FROM events''').df()
ids = con.execute("SELECT id, id_type, customer_key FROM identities").df()
ev = key_events_reference(ev, ids)
out = {"load_s": time.perf_counter() - t0}
t = time.perf_counter()
e = sessionize_reference(ev, pd.Timedelta(minutes=30))
grp = [e.customer_key, e.session_seq]
prev = e.event_type.groupby(grp).shift(1).fillna("session_start")
nxt = e.event_type.groupby(grp).shift(-1)
pairs = pd.concat([pd.DataFrame({"src": prev, "dst": e.event_type}),
                   pd.DataFrame({"src": e.event_type[nxt.isna()], "dst": "session_end"})])
counts = pairs.value_counts()
out["transitions_s"] = time.perf_counter() - t
t = time.perf_counter()
f = ev[ev.event_type.isin(steps)]
reached = f[f.event_type == steps[0]].groupby("customer_key").ts.min().rename("t1").to_frame()
for k, step in enumerate(steps[1:], start=2):
    s = f[f.event_type == step][["customer_key", "ts"]]
    j = reached.reset_index().merge(s, on="customer_key", how="left")
    ok = (j.ts > j[f"t{k-1}"]) & (j.ts <= j.t1 + pd.Timedelta(days=1))  # strictly after
    tk = j[ok].groupby("customer_key").ts.min().rename(f"t{k}")
    reached = reached.join(tk)
out["funnel_s"] = time.perf_counter() - t
t = time.perf_counter()
ts = ev.ts.dt.tz_convert(None)
m = ts.dt.year * 12 + ts.dt.month
first = m.groupby(ev.customer_key).transform("min")
ret = pd.DataFrame({"c": first, "k": m - first, "key": ev.customer_key}).drop_duplicates()
matrix = ret.groupby(["c", "k"]).size()
out["retention_s"] = time.perf_counter() - t
t = time.perf_counter()
first = ev.groupby("customer_key").ts.min()
fp = ev[ev.event_type == "purchase"].groupby("customer_key").ts.min()
gap = fp - first.reindex(fp.index)
fast = gap[(gap >= pd.Timedelta(0)) & (gap <= pd.Timedelta(days=7))]
out["cohort_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    ws = prepare(args.data, args.events)
    tribes = [sys.executable, "-m", "tribes", "-w", str(ws), "--json"]
    # identities, sessions and features for the current events (cohort rules use them)
    measure_isolated([*tribes, "features"])
    runs = {
        "transitions": measure_isolated([*tribes, "journeys", "transitions"]),
        "funnel (4 steps, 1d)": measure_isolated([*tribes, "journeys", "funnel", "--steps",
                                                  STEPS, "--window", "1d"]),
        "funnel (session, strict)": measure_isolated([
            *tribes, "journeys", "funnel", "--steps", STEPS, "--window", "1d", "--per",
            "session", "--ordering", "strict"]),
        "funnel (filter, exclude)": measure_isolated([
            *tribes, "journeys", "funnel", "--steps",
            "product_view where device = mobile,add_to_cart,purchase where amount > 20",
            "--window", "1d", "--exclude", "remove_from_cart between 2 and 3"]),
        "funnel (any order)": measure_isolated([
            *tribes, "journeys", "funnel", "--steps", "search,product_view,add_to_cart",
            "--window", "1d", "--ordering", "unordered"]),
        "monthly retention": measure_isolated([*tribes, "cohorts", "retention"]),
        "recurring retention": measure_isolated([*tribes, "cohorts", "retention",
                                                 "--recurring"]),
        "cohort rule": measure_isolated([*tribes, "cohorts", "define", "fast_buyers", "--rule",
                                         RULE, "--replace"]),
        "sequence rule": measure_isolated([*tribes, "cohorts", "define", "cart_buyers",
                                           "--rule", SEQUENCE, "--replace"]),
    }
    pd_run = measure_isolated([sys.executable, "-c", PANDAS, str(ws / "tribes.duckdb"), STEPS])
    p = json.loads(pd_run.stdout.splitlines()[-1])
    base = {"transitions": p["transitions_s"], "funnel (4 steps, 1d)": p["funnel_s"],
            "monthly retention": p["retention_s"], "cohort rule": p["cohort_s"]}
    print(f"\n{'computation':<26}{'tribes s':>10}{'RSS MiB':>9}{'pandas s':>10}{'ratio':>8}")
    for name, r in runs.items():
        b = base.get(name)
        print(f"{name:<26}{r.seconds:>10.1f}{r.peak_rss_mib:>9.0f}"
              + (f"{b:>10.1f}{b / r.seconds:>7.1f}x" if b is not None else f"{'-':>10}"))
    print(f"pandas: loading and keying the events took {p['load_s']:.1f} s more "
          f"(peak RSS {pd_run.peak_rss_mib:.0f} MiB); tribes times include process start")


if __name__ == "__main__":
    main()
