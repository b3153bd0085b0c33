"""``tribes cohorts``: acquisition cohorts and their retention."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.analysis.cohorts import retention as retention_fn
from tribes.cli.common import JsonOpt, Output, state

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Cohorts: retention of customers grouped by when they arrived.")


@app.command()
def retention(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(
        "--by", help="first_seen, first_purchase or signup; a _month or _week suffix sets "
        "the period (signup_month, first_purchase_week).")] = "first_seen",
    period: Annotated[str | None, typer.Option(
        "--period", help="month or week (default: from --by, else month).",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Retention matrix: share of each cohort active k periods after it started, and the
    revenue of each cohort per period.

    [bold]Examples[/bold]

      tribes -w shop cohorts retention --by signup_month

      tribes -w shop cohorts retention --by first_purchase --period week --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with ws.engine(read_only=True) as engine, out.progress("cohorts"):
        res = retention_fn(engine, by=by, period=period,
                           consent_mode=ws.config.privacy.consent_mode)
    out.result(res)
    if not res["cohorts"]:
        out.print("No cohorts: no events (or no purchases / signup dates) yet.")
        return
    width = min(12, max(len(c["retention"]) for c in res["cohorts"]))
    out.table(f"Retention by {res['by']} {res['period']} (share of the cohort active)",
              ["cohort", "size", *[str(k) for k in range(width)]],
              [(c["cohort"], c["size"], *[
                  "" if k >= len(c["retention"]) or c["retention"][k] is None
                  else f"{c['retention'][k]:.0%}" for k in range(width)])
               for c in res["cohorts"]], no_wrap=(0,))
