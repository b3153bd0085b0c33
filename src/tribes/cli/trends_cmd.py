"""``tribes trends``: daily metrics, their decomposition, forecast and anomalies."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.analysis.trends import METRICS
from tribes.analysis.trends import trends as trends_fn
from tribes.cli.common import JsonOpt, Output, state


def trends(
    ctx: typer.Context,
    metric: Annotated[str, typer.Option("--metric", "-m",
                                        help=f"{', '.join(METRICS)}.")] = "revenue",
    by: Annotated[str | None, typer.Option("--by", help="Break down by: segment.",
                                           show_default=False)] = None,
    horizon: Annotated[int, typer.Option("--horizon", min=1, max=180,
                                         help="Days to forecast.")] = 14,
    json_out: JsonOpt = False,
) -> None:
    """Daily series with STL decomposition (weekly season), a forecast with 95%
    intervals (exponential smoothing or SARIMA, lower AIC; backtest MAPE on the last
    --horizon days) and anomalous days (robust residual z-score > 5).

    [bold]Examples[/bold]

      tribes -w shop trends --metric revenue

      tribes -w shop trends --metric conversion --by segment --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with ws.engine(read_only=True) as engine, out.progress("trends"):
        res = trends_fn(engine, metric, by=by, horizon=horizon,
                        consent_mode=ws.config.privacy.consent_mode)
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
    out.table(f"{metric} per day", ["group", "days", "from", "to", "model",
                                   f"forecast mean ({horizon}d)", "backtest MAPE",
                                   "anomalous days"], rows)
    for g in res["groups"]:
        if g.get("anomalies"):
            out.table(f"Anomalous days ({g['group']})", ["day", "value", "expected", "z"],
                      [(a["day"], round(a["value"], 3), round(a["expected"], 3),
                        round(a["z"], 1)) for a in g["anomalies"][:10]])
        if g.get("note"):
            out.print(f"{g['group']}: {g['note']}")


def register(app: typer.Typer) -> None:
    app.command()(trends)
