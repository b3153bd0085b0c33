"""``tribes ab``: A/B tests measured per segment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from tribes.analysis import AB_METRICS, Design, outcomes, read_assignments, segment_names
from tribes.analysis import analyze_experiment as run_analysis
from tribes.cli.common import JsonOpt, Output, run_settings, state
from tribes.config import parse_duration
from tribes.errors import InputError
from tribes.store import open_engine
from tribes.workspace import RunContext

app = typer.Typer(help="A/B tests by segment: uplift with intervals, corrected p-values, "
                  "sample-ratio check, CUPED.", no_args_is_help=True)


@app.command()
def analyze(
    ctx: typer.Context,
    assignments: Annotated[Path, typer.Option(
        "--assignments", "-a", help="CSV or Parquet: customer id, variant, exposure time "
        "(columns found by name: customer_id/user_id, variant/group/arm, "
        "exposed_at/ts/timestamp).", exists=True, dir_okay=False)],
    metric: Annotated[str, typer.Option(
        "--metric", "-m", help="conversion (bought in the window), revenue (spent in it) "
        "or ctr (clicks over impressions).")] = "conversion",
    by: Annotated[str, typer.Option("--by", help="segment (per segment of the active "
                                    "version, and overall) or none.")] = "segment",
    window: Annotated[str, typer.Option("--window", help="Outcome window after each "
                                        "exposure.")] = "7d",
    pre: Annotated[str, typer.Option("--pre", help="Pre-period before exposure for "
                                     "CUPED.")] = "28d",
    control: Annotated[str | None, typer.Option(
        "--control", help="The control variant (default: 'control' or 'A' if present, "
        "else the first in order).", show_default=False)] = None,
    correction: Annotated[str, typer.Option(
        "--correction", help="holm (family-wise error) or bh (false discovery rate).")
    ] = "holm",
    alpha: Annotated[float, typer.Option("--alpha", min=0.0001, max=0.5)] = 0.05,
    split: Annotated[str | None, typer.Option(
        "--split", help="Planned split control,treatment for the sample-ratio check, e.g. "
        "50,50 (default: equal).", show_default=False)] = None,
    no_cuped: Annotated[bool, typer.Option("--no-cuped", help="No variance reduction.")
                        ] = False,
    click_types: Annotated[str, typer.Option("--click-types", help="ctr: event types of "
                                             "a click.")] = "click,select_promotion",
    impression_types: Annotated[str, typer.Option(
        "--impression-types", help="ctr: event types of an impression.")
    ] = "impression,view_promotion",
    unknown_ids: Annotated[str, typer.Option(
        "--unknown-ids", help="Ids of the assignments that match no customer of the "
        "workspace: exclude (left out, counted and, with --json, listed) or count (as "
        "exposed customers with no outcome: they did not convert).")] = "exclude",
    json_out: JsonOpt = False,
) -> None:
    """Measure a campaign per segment: the uplift of the treatment over the control in the
    window after each customer's exposure, with a confidence interval (Wilson/Newcombe
    for rates, Welch and a bootstrap for revenue), p-values corrected across segments
    (Holm or Benjamini-Hochberg), a sample-ratio-mismatch check and CUPED (the
    pre-period's behavior taken out of the noise). Ends with which segments respond.

    [bold]Examples[/bold]

      tribes -w shop ab analyze --assignments exp.csv --metric conversion

      tribes -w shop ab analyze -a exp.parquet --metric revenue --window 14d --correction bh
    """
    if metric not in AB_METRICS:
        raise typer.BadParameter(f"use one of {', '.join(AB_METRICS)}", param_hint="--metric")
    if by not in ("segment", "none"):
        raise typer.BadParameter("use segment or none", param_hint="--by")
    if correction not in ("holm", "bh"):
        raise typer.BadParameter("use holm or bh", param_hint="--correction")
    if unknown_ids not in ("exclude", "count"):
        raise typer.BadParameter("use exclude or count", param_hint="--unknown-ids")
    planned = None
    if split:
        try:
            planned = [float(x) for x in split.split(",")]
        except ValueError:
            planned = []
        if len(planned) != 2 or min(planned) <= 0:
            raise typer.BadParameter("two positive numbers, e.g. 50,50", param_hint="--split")
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    raw = pd.read_parquet(assignments) if assignments.suffix == ".parquet" else \
        pd.read_csv(assignments)
    with open_engine(ws, read_only=True) as engine, out.progress("measuring") as task:
        task.step("reading assignments")
        assigned = read_assignments(ws, engine, raw)
        unknown = sorted(assigned.loc[~assigned["known"], "id"])
        if unknown_ids == "exclude":
            assigned = assigned[assigned["known"]].reset_index(drop=True)
        variants = sorted(assigned["variant"].unique())
        if len(variants) != 2:
            raise InputError(f"an A/B test has two variants; the assignments have "
                             f"{len(variants)}: {', '.join(variants[:10])}", code="E_AB")
        ctl = control or next((v for v in ("control", "A", "a") if v in variants),
                              variants[0])
        if ctl not in variants:
            raise InputError(f"no variant '{ctl}'; variants: {', '.join(variants)}",
                             code="E_AB")
        task.step("measuring outcomes")
        df = outcomes(RunContext(ws, engine, run_settings(ws)), assigned, metric,
                      window=parse_duration(window),
                      pre=parse_duration(pre), click_types=click_types.split(","),
                      impression_types=impression_types.split(","))
        names = segment_names(engine)
    if by == "none":
        df["segment_id"] = float("nan")
    design = Design(metric=metric, control=ctl,
                    treatment=next(v for v in variants if v != ctl), alpha=alpha,
                    correction=correction, cuped=not no_cuped)
    res = run_analysis(df, design, split=planned, names=names)
    res.update(customers=len(assigned), unknown_ids=len(unknown),
               unknown_ids_policy=unknown_ids, unknown_id_list=unknown,
               excluded_by_consent=int(df.attrs.get("excluded_by_consent", 0)),
               version=df.attrs.get("version"), window=window, pre=pre)
    out.result(res)
    _show(out, res)


def _show(out: Output, res: dict[str, Any]) -> None:
    rate = res["metric"] in ("conversion", "ctr")

    def v(x: float | None) -> str:
        if x is None:
            return ""
        return f"{100 * x:.2f}%" if rate else f"{x:,.2f}"

    def u(x: float) -> str:
        return f"{100 * x:+.2f} pts" if rate else f"{x:+,.2f}"

    srm = res["srm"]
    unknown = (f"{res['unknown_ids']:,} ids unknown here left out" if
               res["unknown_ids_policy"] == "exclude" else
               f"{res['unknown_ids']:,} ids unknown here counted as not converting")
    out.print(f"{res['customers']:,} exposed customers ({unknown}, "
              f"{res['excluded_by_consent']:,} left out for lack of consent); "
              f"{res['metric']} in the {res['window']} after exposure, "
              f"{res['treatment']} vs {res['control']}")
    if srm["mismatch"]:
        out.print(f"[red]Sample-ratio mismatch[/red]: {srm['counts']} against the planned "
                  f"split {srm['split']} (p = {srm['p_value']:.2g}); the assignment is "
                  "suspect, so are the results.")
    rows = []
    for s in [{"segment": "overall", **res["overall"]}, *res["segments"]]:
        if "uplift" not in s:
            rows.append((s["segment"], s["n_control"], s["n_treatment"], "", "", "", "",
                         "", s.get("note", "")))
            continue
        best = s.get("cuped") or s
        lo, hi = best["ci"]
        rows.append((s["segment"], s["n_control"], s["n_treatment"], v(s["control"]),
                     v(s["treatment"]), u(best["uplift"]), f"[{u(lo)}, {u(hi)}]",
                     f"{best['p_value']:.3g}",
                     "" if "p_adjusted" not in s else
                     f"{s['p_adjusted']:.3g}{' ✓' if s['responds'] else ''}"))
    out.table(f"Uplift{' (CUPED)' if res['cuped'] else ''}, {1 - res['alpha']:.0%} intervals",
              ["segment", "n control", "n treatment", "control", "treatment", "uplift",
               "interval", "p", f"p ({res['correction']})"], rows)
    out.print(res["statement"])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ab")
