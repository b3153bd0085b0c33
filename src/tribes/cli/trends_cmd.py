"""``tribes trends``: daily metrics, their decomposition, forecast and anomalies."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.analysis import TREND_METRICS
from tribes.analysis import trends as trends_fn
from tribes.cli.common import CohortOpt, JsonOpt, Output, run_settings, state
from tribes.store import open_engine


def trends(
    ctx: typer.Context,
    metric: Annotated[str, typer.Option("--metric", "-m",
                                        help=f"{', '.join(TREND_METRICS)}.")] = "revenue",
    by: Annotated[str | None, typer.Option("--by", help="Break down by: segment.",
                                           show_default=False)] = None,
    period: Annotated[str, typer.Option(
        "--period", help="day (weekly season) or week (Monday to Sunday; a yearly season "
        "once the data spans two years).")] = "day",
    horizon: Annotated[int | None, typer.Option(
        "--horizon", min=1, max=180, help="Periods to forecast (default: 14 days or 8 weeks).",
        show_default=False)] = None,
    cohort: CohortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Daily (or weekly) series with STL decomposition, a forecast with 95% intervals
    (exponential smoothing or SARIMA, lower AIC; backtest MAPE on the last --horizon
    periods) and anomalous periods (robust residual z-score > 5). A model that does not
    beat a seasonal naive forecast (the value one season earlier) on the backtest is
    replaced by that forecast, and a note says so.

    [bold]Examples[/bold]

      tribes -w shop trends --metric revenue

      tribes -w shop trends --metric conversion --by segment --json

      tribes -w shop trends --metric active_customers --period week --cohort fast_buyers
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    settings = run_settings(ws)
    with open_engine(ws, read_only=True) as engine, out.progress("trends"):
        res = trends_fn(engine, metric, by=by, horizon=horizon, freq=period, cohort=cohort,
                        consent_mode=settings.consent_mode)
    horizon = res["horizon"]
    out.result(res)
    rows = []
    for g in res["groups"]:
        f = g.get("forecast") or {}
        bt = f.get("backtest") or {}
        mape = bt.get("mape")
        rows.append((g["group"], len(g["days"]), g["days"][0] if g["days"] else None,
                     g["days"][-1] if g["days"] else None, f.get("model"),
                     None if not f else round(sum(f["mean"]) / len(f["mean"]), 3),
                     None if mape is None else f"{mape:.1%}", len(g.get("anomalies", []))))
    unit = res["freq"]
    out.table(f"{metric} per {unit}", ["group", f"{unit}s", "from", "to", "model",
                                      f"forecast mean ({horizon} {unit}s)", "backtest MAPE",
                                      f"anomalous {unit}s"], rows, no_wrap=(0, 2, 3))
    for g in res["groups"]:
        if g.get("anomalies"):
            out.table(f"Anomalous {unit}s ({g['group']})", [unit, "value", "expected", "z"],
                      [(a["day"], round(a["value"], 3), round(a["expected"], 3),
                        round(a["z"], 1)) for a in g["anomalies"][:10]])
        if g.get("note"):
            out.print(f"{g['group']}: {g['note']}")
        if (g.get("forecast") or {}).get("note"):
            out.print(f"{g['group']}: {g['forecast']['note']}")


def register(app: typer.Typer) -> None:
    app.command()(trends)
