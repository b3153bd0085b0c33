#!/usr/bin/env bash
# End-to-end demo on embedded DuckDB: synthetic data -> ingest -> prep, features ->
# segments, CLV, personas -> cohorts -> the HTML report.
set -euo pipefail
TRIBES=${TRIBES:-tribes}
DEMO=${DEMO:-demo}
N=${DEMO_CUSTOMERS:-20000}
start=$(date +%s)

rm -rf "$DEMO"
echo "== generating $N synthetic customers into $DEMO/data"
"$TRIBES" synth --customers "$N" --days 180 --seed 7 --out "$DEMO/data"

WS="$DEMO/shop"
"$TRIBES" init "$WS"
echo "== ingesting"
"$TRIBES" -w "$WS" ingest "$DEMO/data/web/*" --source web
"$TRIBES" -w "$WS" ingest "$DEMO/data/app/*.jsonl.gz" --source app
"$TRIBES" -w "$WS" ingest "$DEMO/data/purchases.parquet" --source pos --event-type purchase \
    --map ts=sold_at,customer_id=member_no
"$TRIBES" -w "$WS" ingest "$DEMO/data/support.csv" --source support --event-type support_contact \
    --map event_id=ticket_id,ts=created --ts-format '%d/%m/%Y %H:%M'
"$TRIBES" -w "$WS" ingest "$DEMO/data/customers.csv" --kind customers
"$TRIBES" -w "$WS" ingest "$DEMO/data/consents.csv" --kind consents
echo "== re-ingesting the web files loads nothing new"
"$TRIBES" -w "$WS" ingest "$DEMO/data/web/*" --source web
echo "== workspace"
"$TRIBES" -w "$WS" status
"$TRIBES" -w "$WS" quarantine show --reason E_TS_PARSE --limit 5
echo "== prep (identity stitching, sessions) and customer features"
"$TRIBES" -w "$WS" run
"$TRIBES" -w "$WS" features describe
"$TRIBES" -w "$WS" export features --out "$DEMO/features.parquet"
echo "== segments (kmeans, k chosen automatically)"
"$TRIBES" -w "$WS" segment
"$TRIBES" -w "$WS" versions list
echo "== lifetime value and churn risk (BG/NBD + Gamma-Gamma), checked on a holdout"
"$TRIBES" -w "$WS" clv fit
"$TRIBES" -w "$WS" clv score --horizon 52w
"$TRIBES" -w "$WS" export clv --out "$DEMO/clv.parquet"
# churn risk from the model that ranks a holdout's churners best (personas show it)
"$TRIBES" -w "$WS" clv churn --days 30
echo "== personas and KPI validation"
"$TRIBES" -w "$WS" personas
"$TRIBES" -w "$WS" personas export --out "$DEMO/personas"
"$TRIBES" -w "$WS" validate
"$TRIBES" -w "$WS" export segments --out "$DEMO/segments.csv"
echo "== behavioral cohorts, used as a filter"
"$TRIBES" -w "$WS" cohorts define fast_buyers --rule "first purchase within 7 days of first event"
"$TRIBES" -w "$WS" cohorts define at_risk_spenders \
    --rule "no purchase in the last 45 days and monetary > 200"
"$TRIBES" -w "$WS" journeys funnel --steps product_view,add_to_cart,begin_checkout,purchase \
    --cohort fast_buyers
echo "== monitoring: today's customers against the active version (drift, shares)"
"$TRIBES" -w "$WS" monitor
"$TRIBES" -w "$WS" alerts list
echo "== the whole pipeline again: nothing changed, so nothing is rebuilt"
"$TRIBES" -w "$WS" run
echo "== activation: memberships as files with a manifest (an http target gets signed batches)"
cat >> "$WS/tribes.toml" <<'TOML'

[activation.lake]
kind = "file"
path = "exports/lake"
format = "parquet"
TOML
"$TRIBES" -w "$WS" activate --target lake --dry-run
"$TRIBES" -w "$WS" activate --target lake
echo "== an A/B test by segment (random assignment, no real campaign: nothing should respond)"
PY="$(dirname "$(command -v "$TRIBES")")/python"
"$PY" - "$DEMO" <<'PY'
import sys, pandas as pd
demo = sys.argv[1]
ids = pd.read_csv(f"{demo}/data/ground_truth.csv").customer_id
pd.DataFrame({"customer_id": ids, "variant": ["control", "treatment"] * (len(ids) // 2)
              + ["control"] * (len(ids) % 2),
              "exposed_at": "2026-05-01T00:00:00Z"}).sample(frac=1, random_state=1).to_csv(
    f"{demo}/experiment.csv", index=False)
PY
"$TRIBES" -w "$WS" ab analyze --assignments "$DEMO/experiment.csv" --metric conversion --window 14d
echo "== the report"
"$TRIBES" -w "$WS" report --out "$DEMO/report.html"
echo "== one customer"
"$TRIBES" -w "$WS" customer C0000001 --limit 5
"$TRIBES" -w "$WS" personas
echo "== demo finished in $(( $(date +%s) - start ))s; workspace: $WS"
echo "== open the report: $DEMO/report.html"
