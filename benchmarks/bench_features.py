"""Prep and features against a hand-written DuckDB query and a pandas implementation.

On synthetic events already ingested into a workspace (cached between runs), runs side by
side, each in a fresh process:

* ``tribes prep``: identity stitching + the sessions table;
* ``tribes features``: every customer feature (sessions, RFM, engagement, mix shares,
  composite index, consent) into ``customer_features``; prep and features run through
  the Python API the commands call (``tribes.open(ws).prep()``), timing the seconds from
  each progress step the stage reports to the next (where the time goes);
* sql: one hand-written DuckDB statement computing sessions and the core features from
  the same events and identities (``CREATE TEMP TABLE AS``, default DuckDB settings), with
  its windows ordered by (ts, event_id), and again ordered by ts alone as tribes orders
  them (events at one instant are in one session either way);
* pandas: the plain pandas implementation of the same definitions
  (``tests.features.reference``), timing the load into pandas and the computation.

Prints seconds and peak RSS of each, the ratios, and the seconds of each step of prep and
features (the remainder, not inside any step, is process start and exit). Targets at 10M
events (~185k customers): prep + features within 1.5x of the SQL query, features within
1.3x, at least 2.5x faster than pandas, peak RSS under 4 GiB.

    python benchmarks/bench_features.py                      # 10M events
    python benchmarks/bench_features.py --events 1000000     # a quick look
    python benchmarks/bench_features.py --events 50000000 --no-pandas   # memory check
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure_isolated

ROOT = Path(__file__).resolve().parents[1]

EVENTS_PER_CUSTOMER = 54.0  # all sources, measured on the synthetic data

SQL = """
import sys, time, duckdb
ws_db, as_of, order = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect(ws_db, read_only=True)
con.execute("SET enable_progress_bar = false")
con.execute("SET TimeZone = 'UTC'")
con.execute("SET VARIABLE as_of = CAST(? AS TIMESTAMPTZ)", [as_of])
con.execute('''
CREATE TEMP TABLE f AS
WITH k AS (
  SELECT event_id, ts, event_type, source, category, order_id, amount, customer_id AS ck
  FROM events WHERE customer_id IS NOT NULL AND ts <= getvariable('as_of')
  UNION ALL
  SELECT e.event_id, e.ts, e.event_type, e.source, e.category, e.order_id, e.amount,
         i.customer_key
  FROM events e
  JOIN identities i
    ON i.id_type = CASE WHEN e.anonymous_id IS NOT NULL THEN 'anonymous_id' ELSE 'device_id' END
   AND i.id = coalesce(e.anonymous_id, e.device_id)
  WHERE e.customer_id IS NULL AND e.ts <= getvariable('as_of')
), m AS (
  SELECT *, date_diff('microsecond', lag(ts) OVER (PARTITION BY ck ORDER BY ORDER_KEYS), ts)
            AS gap
  FROM k
), s AS (
  SELECT *, sum(CASE WHEN gap IS NULL OR gap > 1800000000 THEN 1 ELSE 0 END)
            OVER (PARTITION BY ck ORDER BY ORDER_KEYS FRAME UNBOUNDED PRECEDING) AS seq
  FROM m
), sess AS (
  SELECT ck, seq, min(ts) AS st, max(ts) AS en, count(*) AS n,
         bool_or(event_type = 'add_to_cart') AS atc, bool_or(event_type = 'purchase') AS pur,
         count(DISTINCT category) AS dc_s
  FROM s GROUP BY ck, seq
), per_sess AS (
  SELECT ck, count(*) AS n_sessions,
         avg(date_diff('microsecond', st, en)) / 1e6 AS avg_session_duration_s,
         sum(atc::INT) AS atc_sessions, sum((atc AND NOT pur)::INT) AS abandoned
  FROM sess GROUP BY ck
), orders AS (
  SELECT ck, coalesce('o' || order_id, 'e' || event_id) AS ok, min(ts) AS ots,
         sum(amount) AS amt
  FROM k WHERE event_type = 'purchase' GROUP BY ALL
), per_ord AS (
  SELECT ck, count(*) AS frequency, sum(amt) AS monetary, min(ots) AS fo, max(ots) AS lo
  FROM orders GROUP BY ck
), per_ev AS (
  SELECT ck, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n_events,
         count(DISTINCT category) AS distinct_categories,
         sum((source = 'support')::INT) AS support_contacts
  FROM k GROUP BY ck
)
SELECT e.ck AS customer_key,
  date_diff('microsecond', e.last_ts, getvariable('as_of')) / 86400e6 AS recency_days,
  date_diff('microsecond', e.first_ts, getvariable('as_of')) / 86400e6 AS tenure_days,
  coalesce(o.frequency, 0) AS frequency, coalesce(o.monetary, 0) AS monetary,
  o.monetary / o.frequency AS aov,
  date_diff('microsecond', o.lo, getvariable('as_of')) / 86400e6 AS purchase_recency_days,
  CASE WHEN o.frequency >= 2
       THEN date_diff('microsecond', o.fo, o.lo) / 86400e6 / (o.frequency - 1) END
       AS purchase_velocity_days,
  date_diff('microsecond', e.first_ts, o.fo) / 86400e6 AS days_to_first_purchase,
  e.n_events, p.n_sessions,
  p.n_sessions / greatest(date_diff('microsecond', e.first_ts, getvariable('as_of'))
                          / 86400e6 / 7, 1) AS sessions_per_week,
  p.avg_session_duration_s, e.n_events / p.n_sessions AS events_per_session,
  e.distinct_categories,
  CASE WHEN p.atc_sessions > 0 THEN p.abandoned / p.atc_sessions END
       AS cart_abandonment_rate,
  e.support_contacts
FROM per_ev e JOIN per_sess p USING (ck) LEFT JOIN per_ord o USING (ck)
'''.replace("ORDER_KEYS", order).replace(
    "FRAME", "ROWS" if "," in order else "RANGE"))
print(con.execute("SELECT count(*) FROM f").fetchone()[0])
"""

# a stage in a child process: its report and the seconds of each progress step
STAGE = """
import json, sys, time
t0 = time.perf_counter()
import tribes
ws, stage = sys.argv[1], sys.argv[2]
marks = [("imports, opening the workspace", t0)]
def progress(step):
    marks.append((step, time.perf_counter()))
res = getattr(tribes.open(ws), stage)(progress=progress)
marks.append(("", time.perf_counter()))
steps = [[m, round(t2 - t, 3)] for (m, t), (_, t2) in zip(marks, marks[1:])]
print(json.dumps({**res.report.as_dict(), "steps": steps}, default=str))
"""

# the child process imports the pandas reference (tests.features.reference) from the repo
PANDAS = f"import sys; sys.path.insert(0, {str(ROOT)!r})" + """
import sys, time, json, duckdb, pandas as pd
from tests.features.reference import features_reference, key_events_reference
ws_db, as_of = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
con = duckdb.connect(ws_db, read_only=True)
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
ev = con.execute('''SELECT event_id, ts, event_type, customer_id, anonymous_id, device_id,
  source, channel, device, category, order_id, amount FROM events''').df()
ids = con.execute("SELECT id, id_type, customer_key FROM identities").df()
t1 = time.perf_counter()
keyed = key_events_reference(ev, ids)
f = features_reference(keyed, as_of=pd.Timestamp(as_of))
t2 = time.perf_counter()
print(json.dumps({"rows": len(f), "load_s": t1 - t0, "compute_s": t2 - t1}))
"""


def prepare(data: Path, events: int) -> Path:
    """A workspace holding ~``events`` ingested synthetic events (cached between runs)."""
    from tribes.synth import SynthConfig
    from tribes.synth import generate as synth

    customers = max(200, int(events / EVENTS_PER_CUSTOMER))
    src = data / f"synth-{customers}"
    if not (src / "manifest.json").exists():
        shutil.rmtree(src, ignore_errors=True)
        print(f"generating {customers:,} customers (~{events:,} events) ...", flush=True)
        synth(SynthConfig(out=src, customers=customers, days=180, seed=13,
                          web_format="parquet", chunk_customers=20000))
    ws = data / f"ws-{customers}"
    done = ws / ".bench-ingested"
    if not done.exists():
        shutil.rmtree(ws, ignore_errors=True)
        tribes = [sys.executable, "-m", "tribes", "-q"]
        print("ingesting ...", flush=True)
        subprocess.run([*tribes, "init", str(ws)], check=True)
        w = [*tribes, "-w", str(ws), "ingest"]
        subprocess.run([*w, str(src / "web"), "--source", "web"], check=True)
        subprocess.run([*w, str(src / "app"), "--source", "app"], check=True)
        subprocess.run([*w, str(src / "purchases.parquet"), "--source", "pos", "--event-type",
                        "purchase", "--map", "ts=sold_at,customer_id=member_no"], check=True)
        subprocess.run([*w, str(src / "support.csv"), "--source", "support", "--event-type",
                        "support_contact", "--map", "event_id=ticket_id,ts=created",
                        "--ts-format", "%d/%m/%Y %H:%M"], check=True)
        subprocess.run([*w, str(src / "consents.csv"), "--kind", "consents"], check=True)
        done.touch()
    return ws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas run")
    args = ap.parse_args()

    ws = prepare(args.data, args.events)
    prep = measure_isolated([sys.executable, "-c", STAGE, str(ws), "prep"])
    prep_out = json.loads(prep.stdout.splitlines()[-1])
    feats = measure_isolated([sys.executable, "-c", STAGE, str(ws), "features"])
    f_out = json.loads(feats.stdout.splitlines()[-1])
    as_of = f_out["as_of"]
    sql = measure_isolated([sys.executable, "-c", SQL, str(ws / "tribes.duckdb"), as_of,
                            "ts, event_id"])
    sql_ts = measure_isolated([sys.executable, "-c", SQL, str(ws / "tribes.duckdb"), as_of,
                               "ts"])
    rows: list[tuple[str, float, float, str]] = [
        ("tribes prep", prep.seconds, prep.peak_rss_mib,
         f"{prep_out['stitching']['customers']:,} customers, {prep_out['sessions']:,} "
         "sessions"),
        ("tribes features", feats.seconds, feats.peak_rss_mib,
         f"{f_out['customers']:,} customers x {len(f_out['columns'])} columns"),
        ("hand-written SQL", sql.seconds, sql.peak_rss_mib,
         f"{int(sql.stdout.strip()):,} customers, core features; windows by (ts, event_id)"),
        ("  same, by ts", sql_ts.seconds, sql_ts.peak_rss_mib,
         "the same query with windows ordered by ts alone (as tribes orders them)"),
    ]
    pandas_s = None
    if not args.no_pandas:
        pd_run = measure_isolated([sys.executable, "-c", PANDAS, str(ws / "tribes.duckdb"),
                                   as_of])
        info = json.loads(pd_run.stdout.splitlines()[-1])
        pandas_s = info["compute_s"]
        rows.append(("pandas", pd_run.seconds, pd_run.peak_rss_mib,
                     f"load {info['load_s']:.1f}s + compute {info['compute_s']:.1f}s"))

    print(f"\n{prep_out['events']:,} events; times include process start and opening the "
          "workspace")
    print(f"{'run':<18}{'seconds':>9}{'peak RSS MiB':>14}  notes")
    for name, s, rss, note in rows:
        print(f"{name:<18}{s:>9.1f}{rss:>14.0f}  {note}")
    print(f"\nfeatures / SQL            : {feats.seconds / sql.seconds:.2f}x  (target <= 1.3)")
    print(f"(prep + features) / SQL   : {(prep.seconds + feats.seconds) / sql.seconds:.2f}x"
          "  (target <= 1.5)")
    print(f"  ... / SQL ordered by ts : "
          f"{(prep.seconds + feats.seconds) / sql_ts.seconds:.2f}x")
    if pandas_s is not None:
        print(f"pandas compute / features : {pandas_s / feats.seconds:.2f}x  "
              "(target >= 2.5)")
    print(f"peak RSS (tribes)         : {max(prep.peak_rss_mib, feats.peak_rss_mib):.0f} MiB "
          "(target < 4096)")
    print_steps([("prep", prep.seconds, prep_out), ("features", feats.seconds, f_out)])


def print_steps(runs: list[tuple[str, float, dict[str, Any]]]) -> None:
    """Seconds of each progress step of each stage, and their share of the stage's time."""
    print(f"\n{'step':<62}{'seconds':>9}{'share':>7}")
    for stage, seconds, out in runs:
        rows = [*out["steps"], ["process start and exit",
                                seconds - sum(s for _, s in out["steps"])]]
        for step, s in rows:
            print(f"{(stage + ': ' + step)[:61]:<62}{s:>9.2f}{s / seconds:>7.0%}")


if __name__ == "__main__":
    main()
