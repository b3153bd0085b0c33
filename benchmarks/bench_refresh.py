"""A refresh after appending new events, against a full build of the same events.

On the synthetic workspace of ``bench_features.py`` (cached between runs) with a segment
version and a CLV fit (also cached), this script:

1. copies the workspace and ingests an append of about ``--share`` (1%) new events from
   the same web files: by default the newest of them again, moved past the newest event
   by their own span (``--append recent``: tomorrow's visitors are today's), or rows from
   the whole history squeezed into the next day (``--append spread``: each new event
   touches another customer); a tenth of them from visitors never seen before (new
   cookies, no login);
2. times ``tribes run`` on the copy: what a daily refresh costs today (prep, features,
   cohorts, the refresh of the active version's memberships, the drift check, a new
   segment version and personas as the run decides), with each step's seconds from the
   run's progress;
3. times the full build of the same events side by side: ``prep`` and ``features`` from
   scratch in fresh processes, as ``bench_features.py`` runs them;
4. prints the ratio refresh / full build (the target: at most 10%) and what the run did
   (a new segment version or not).

    python benchmarks/bench_refresh.py                   # 10M events, 1% appended
    python benchmarks/bench_refresh.py --events 1000000  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure_isolated
from bench_features import STAGE, prepare, print_steps

# ``tribes run`` through the Python API, timing each progress step
RUN = """
import json, sys, time
t0 = time.perf_counter()
import tribes
ws = sys.argv[1]
marks = [("imports, opening the workspace", t0)]
def progress(step):
    marks.append((step, time.perf_counter()))
res = tribes.open(ws).run(progress=progress)
marks.append(("", time.perf_counter()))
steps = [[m, round(t2 - t, 3)] for (m, t), (_, t2) in zip(marks, marks[1:])]
print(json.dumps({**res.summary, "stages": res.summary["steps"], "steps": steps},
                 default=str))
"""

APPEND = """
import sys, duckdb
src, out, share = sys.argv[1], sys.argv[2], float(sys.argv[3])
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute("SET TimeZone = 'UTC'")
# recent: the newest share of the web rows, moved past the newest event by their own
# span (tomorrow's visitors are today's); spread: a share of all web rows, their times
# squeezed into the day after the newest event (visitors from across the whole history:
# many more customers touched per event). Either way a tenth of the visitors are new (a
# new cookie, no login).
kind = sys.argv[4]
pick = ("_e >= q" if kind == "recent"
        else 'hash(cookie_id || "timestamp") % 100000 < ' + str(share) + ' * 100000')
moved = ("_e + (hi - q) + 60" if kind == "recent"
         else "hi + 60 + (_e - lo) / (hi - lo) * 86000")
con.execute(f'''
COPY (
  WITH r AS (SELECT *, epoch(TRY_CAST("timestamp" AS TIMESTAMPTZ)) AS _e
             FROM read_parquet('{src}/web/*.parquet')),
  -- the rows ingest keeps (the files hold some with bad times on purpose)
  t AS (SELECT * FROM r WHERE _e BETWEEN epoch(TIMESTAMPTZ '2000-01-01') AND epoch(now())),
  span AS (SELECT min(_e) AS lo, max(_e) AS hi, quantile_cont(_e, 1 - {share}) AS q
           FROM t)
  SELECT * EXCLUDE (_e, lo, hi, q, "timestamp", cookie_id, user_id),
         strftime(to_timestamp({moved}), '%Y-%m-%dT%H:%M:%S.%fZ') AS "timestamp",
         CASE WHEN hash(cookie_id) % 10 = 0 THEN 'new-' || cookie_id ELSE cookie_id END
           AS cookie_id,
         CASE WHEN hash(cookie_id) % 10 = 0 THEN NULL ELSE user_id END AS user_id
  FROM t, span
  WHERE _e IS NOT NULL AND {pick}
) TO '{out}' (FORMAT parquet)''')
print(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0])
"""


def tribes_cmd() -> list[str]:
    return [sys.executable, "-m", "tribes", "-q"]


def base_workspace(data: Path, ws: Path) -> Path:
    """A copy of ``ws`` with features, a k-means version of 5 segments and a CLV fit."""
    base = data / f"refresh-base-{ws.name}"
    done = base / ".bench-refresh-base"
    if not done.exists():
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(ws, base)
        print("building the base: features, a segment version, a CLV fit ...", flush=True)
        w = [*tribes_cmd(), "-w", str(base)]
        subprocess.run([*w, "run"], check=True)
        subprocess.run([*w, "segment", "--method", "kmeans", "--k", "5"], check=True)
        subprocess.run([*w, "personas"], check=True)
        subprocess.run([*w, "clv", "fit"], check=True)
        subprocess.run([*w, "clv", "score"], check=True)
        done.touch()
    kept = base / ".bench-refresh-state"
    if not kept.exists():
        # a base built before prep kept its id tuples and features their per-customer
        # state: both once more (the same tables), so the refresh can be incremental
        subprocess.run([*tribes_cmd(), "-w", str(base), "prep"], check=True)
        subprocess.run([*tribes_cmd(), "-w", str(base), "features"], check=True)
        kept.touch()
    weeks = base / ".bench-refresh-run"
    if not weeks.exists():
        # monitoring keeps its weekly table, and run its record of the cohorts' refresh,
        # from the first run on
        subprocess.run([*tribes_cmd(), "-w", str(base), "run"], check=True)
        weeks.touch()
    snap = base / ".bench-refresh-snapshot"
    if not snap.exists():
        # dated feature snapshots: the first one holds every customer; a refresh then
        # keeps only the customers that changed
        subprocess.run([*tribes_cmd(), "-w", str(base), "features"], check=True)
        snap.touch()
    return base


def versions(ws: Path) -> int:
    out = subprocess.run([*tribes_cmd(), "-w", str(ws), "versions", "list", "--json"],
                         check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    return len(data if isinstance(data, list) else data.get("versions", []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--share", type=float, default=0.01,
                    help="share of the web events appended (default 0.01)")
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    ap.add_argument("--append", choices=("recent", "spread"), default="recent",
                    help="recent (default): the newest web rows again, a day later; "
                         "spread: web rows from the whole history")
    ap.add_argument("--keep", action="store_true",
                    help="keep the refreshed copy and the append (under DATA/refresh-work)")
    args = ap.parse_args()

    ws = prepare(args.data, args.events)
    base = base_workspace(args.data, ws)
    src = args.data / ws.name.replace("ws-", "synth-")
    work = args.data / "refresh-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    append = work / "append.parquet"
    made = measure_isolated([sys.executable, "-c", APPEND, str(src), str(append),
                             str(args.share), args.append])
    n_append = int(made.stdout.strip())

    copy = work / "ws"
    shutil.copytree(base, copy)
    # the default policy, whatever the cached workspace was created with (before the
    # policy existed, init wrote resegment = true: a new version on every run)
    toml = copy / "tribes.toml"
    toml.write_text(re.sub(r"(?m)^resegment\s*=.*$", 'resegment = "on-drift"',
                           toml.read_text()))
    before = versions(copy)
    ingest = measure_isolated([*tribes_cmd(), "-w", str(copy), "ingest", str(append),
                               "--source", "web", "--json"])
    loaded = json.loads(ingest.stdout)["loaded"]
    run = measure_isolated([sys.executable, "-c", RUN, str(copy)])
    run_out = json.loads(run.stdout.splitlines()[-1])
    after = versions(copy)

    # the full build of the same events, side by side
    prep = measure_isolated([sys.executable, "-c", STAGE, str(copy), "prep"])
    prep_out = json.loads(prep.stdout.splitlines()[-1])
    feats = measure_isolated([sys.executable, "-c", STAGE, str(copy), "features"])
    f_out = json.loads(feats.stdout.splitlines()[-1])
    full = prep.seconds + feats.seconds

    load = os.getloadavg()
    print(f"\n{prep_out['events']:,} events after appending {loaded:,} "
          f"({n_append:,} rows, {loaded / max(prep_out['events'] - loaded, 1):.2%}, "
          f"--append {args.append}); "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'run':<34}{'seconds':>9}{'peak RSS MiB':>14}")
    for name, r in (("ingest of the append", ingest), ("tribes run (the refresh)", run),
                    ("full build: prep", prep), ("full build: features", feats)):
        print(f"{name:<34}{r.seconds:>9.1f}{r.peak_rss_mib:>14.0f}")
    print(f"\nrefresh / full build      : {run.seconds / full:.0%}  (target <= 10%)")
    print(f"segment versions          : {before} before, {after} after the refresh "
          "(target: no new version for a routine append)")
    print(f"what the run did          : {run_out.get('outcome', '-')}")
    inc = (run_out.get("prep") or {}).get("incremental")
    feats_done = (run_out.get("features") or {}).get("recomputed")
    print("prep                      : " + (
        f"incremental, {inc['touched_customers']:,} customers touched "
        f"({inc['rekeyed_customers']:,} whose ids changed), {inc['restitched_ids']:,} ids "
        "stitched again" if inc else "full"))
    print("features                  : " + (
        f"{feats_done:,} customers recomputed" if feats_done is not None else "full"))
    for stage, what in run_out["stages"].items():
        print(f"  run: {stage:<22}: {what}")
    print_steps([("run", run.seconds, run_out)])
    print_steps([("prep", prep.seconds, prep_out), ("features", feats.seconds, f_out)])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
