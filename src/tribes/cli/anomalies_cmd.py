"""``tribes anomalies``: unusual customers, with reasons."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.analysis import OUTLIER_METHODS, find_outliers
from tribes.cli.common import JsonOpt, Output, state
from tribes.features import segment_features
from tribes.store import open_engine

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Anomalies: customers who behave unlike the others.")


@app.command()
def customers(
    ctx: typer.Context,
    method: Annotated[str, typer.Option(
        "--method", "-m", help=f"{', '.join(OUTLIER_METHODS)}.")] = "isolation_forest",
    contamination: Annotated[float, typer.Option(
        "--contamination", help="Expected share of outliers (isolation_forest, lof).")] = 0.02,
    features: Annotated[str | None, typer.Option(
        "--features", "-f", help="Comma-separated features (default: segment.features).",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1,
                                       help="Outliers to list.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Flag unusual customers on the scaled feature table; each with the features that
    make them unusual (largest z-scores).

    [bold]Example[/bold]

      tribes -w shop anomalies customers --method lof --contamination 0.01
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    feats = ([f.strip() for f in features.split(",") if f.strip()] if features
             else segment_features(ws.config.segment.features))
    with open_engine(ws, read_only=True) as engine, out.progress("looking for outliers"):
        res = find_outliers(engine, feats, method=method, contamination=contamination,
                            sample_size=ws.config.segment.sample_size,
                            random_state=ws.config.segment.random_state)
    out.result(res)
    out.print(f"{res['flagged']:,} of {res['customers']:,} customers flagged by {method}")
    out.table("Most unusual customers", ["customer_key", "score", "why (z-scores)"],
              [(o["customer_key"], round(o["score"], 3),
                ", ".join(f"{r['feature']} {r['z']:+.1f}" for r in o["reasons"]))
               for o in res["outliers"][:limit]], no_wrap=(0,))
