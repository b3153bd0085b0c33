"""``tribes clv``: customer lifetime value and churn risk from purchase histories."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, opened, state
from tribes.errors import InputError
from tribes.features import parse_as_of
from tribes.models import last_fit, validate_clv
from tribes.store import open_engine

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich", help=(
    "Customer lifetime value: how likely each customer is still active, how much they "
    "will buy and what it is worth (BG/NBD, Pareto/NBD, MBG/NBD with Gamma-Gamma spend).\n\n"
    "Repeat buyers whose average transaction value is zero or negative (free or refunded "
    "orders) are left out of the spend model and valued at 0; clv fit --strict-spend "
    "refuses the spend model on such data instead.\n\n"
    "Start with [bold]tribes clv fit[/bold], then [bold]tribes clv score[/bold]."))

CalOpt = Annotated[str | None, typer.Option(
    "--calibration-end", help="Fit on purchases up to this ISO date (its end, UTC) and check "
    "the fit on the rest (default: all purchases; the check holds out the last third).",
    show_default=False)]


def _date(text: str | None) -> datetime | None:
    """--calibration-end: an ISO date (its end, UTC) or date-time."""
    if text is None:
        return None
    try:
        return parse_as_of(text)
    except InputError:
        raise InputError(f"--calibration-end '{text}' is not an ISO date or date-time "
                         "(e.g. 1997-09-30)", code="E_CLV_PERIOD") from None


def _params(p: dict[str, float] | None, se: dict[str, float | None] | None = None) -> str:
    if not p:
        return "-"
    se = se or {}
    return ", ".join(f"{k}={v:.4g}" + (f" (±{se[k]:.2g})" if se.get(k) else "")
                     for k, v in p.items())


def _excluded(counts: dict[str, int] | None) -> str:
    n = (counts or {}).get("non_positive_average", 0)
    return (f"; {n:,} with a zero or negative average transaction value left out "
            "(expected value 0)") if n else ""


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1%}"


def _show_holdout(out: Output, h: dict[str, Any], title: str) -> None:
    cum = h["cumulative"]
    out.print(f"{title}: fitted up to {h['calibration_end'][:10]}, checked on the "
              f"{h['length']:.1f} {h['unit']}s to {h['holdout_end'][:10]} "
              f"({h['customers']:,} customers)")
    out.table("Repeat purchases in the holdout, by purchases before it",
              ["repeat purchases", "customers", "actual (mean)", "predicted (mean)"],
              [(b["frequency"], b["customers"], round(b["actual"], 3), round(b["predicted"], 3))
               for b in h["by_frequency"]])
    out.print(f"holdout total: actual {h['actual']:,.0f}, predicted {h['predicted']:,.0f} "
              f"({_pct(h['error_pct'])}); mean absolute error per customer {h['mae']:.3f}")
    out.print(f"cumulative repeat purchases to {cum['date'][-1]}: actual "
              f"{cum['actual_at_end']:,.0f}, predicted {cum['predicted_at_end']:,.0f} "
              f"({_pct(cum['error_pct_at_end'])})")


@app.command()
def fit(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="bgnbd, pareto_nbd or mbgnbd (default: clv.model, bgnbd).",
        show_default=False)] = None,
    calibration_end: CalOpt = None,
    period: Annotated[str | None, typer.Option(
        "--period", help="day or week: purchases in one period count as one transaction "
        "(default: clv.period, day).", show_default=False)] = None,
    time_unit: Annotated[str | None, typer.Option(
        "--time-unit", help="day, week or month for recency, T and rates "
        "(default: clv.time_unit, week).", show_default=False)] = None,
    strict_spend: Annotated[bool | None, typer.Option(
        "--strict-spend/--no-strict-spend", help="Fit no spend model at all when a repeat "
        "buyer's average transaction value is zero or negative, instead of leaving those "
        "buyers out (default: clv.strict_spend, off).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fit the purchase model and the Gamma-Gamma spend model by maximum likelihood.

    The purchase model learns, from each purchaser's number of repeat transactions, the
    time of the last one and the length of their history, how often customers buy and
    how fast they drop out. Standard errors come from the Hessian. The fit is checked
    on a holdout: predicted against actual repeat purchases.

    The spend model is fitted on the repeat buyers whose average transaction value is
    above 0; those with free or fully refunded repeat orders are left out and counted
    (spend_excluded in --json), and clv score gives them an expected value, and so a
    CLV, of 0. --strict-spend refuses the spend model on such data instead.

    [bold]Examples[/bold]

      tribes -w shop clv fit

      tribes -w shop clv fit --model pareto_nbd --calibration-end 1997-09-30 --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    cal = _date(calibration_end)
    with out.progress("clv fit") as task:
        res = Workspace(ws).clv.fit(model=model, calibration_end=cal, period=period,
                                    time_unit=time_unit, strict_spend=strict_spend,
                                    progress=task.step).summary
    out.result(res)
    out.print(f"[bold]{res['model']}[/bold] on {res['n_customers']:,} purchasers "
              f"({res['repeat_buyers']:,} with repeat purchases) up to "
              f"{res['calibration_end'][:10]}, time in {res['time_unit']}s, one transaction "
              f"per {res['period']}")
    out.print(f"  parameters: {_params(res['params'], res['se'])}")
    out.print(f"  log-likelihood {res['loglik']:,.1f}")
    if res["spend_params"]:
        ind = res["independence"]
        out.print(f"  spend (Gamma-Gamma): {_params(res['spend_params'], res['spend_se'])}; "
                  f"mean transaction value {res['mean_value'] or float('nan'):,.2f}; "
                  f"frequency-value correlation "
                  f"{'-' if ind['pearson'] is None else format(ind['pearson'], '.2f')}")
        out.print(f"  fitted on {res['spend_customers']:,} repeat buyers"
                  + _excluded(res["spend_excluded"]))
    _show_holdout(out, res["holdout"], "Holdout check" + (
        " (a second fit leaving out the last part)" if res["auto_holdout"] else ""))
    for w in res["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {w}")
    out.print("Next: tribes clv score --horizon 52w")


@app.command()
def score(
    ctx: typer.Context,
    horizon: Annotated[str | None, typer.Option(
        "--horizon", help="Predict this far ahead, e.g. 52w, 90d (default: clv.horizon, 52w).",
        show_default=False)] = None,
    discount_rate: Annotated[float | None, typer.Option(
        "--discount-rate", help="Monthly discount rate of the CLV (default: clv.discount_rate,"
        " 0.01).", show_default=False)] = None,
    threshold: Annotated[float | None, typer.Option(
        "--churn-threshold", help="P(alive) below this flags a churn risk "
        "(default: clv.churn_threshold, 0.5).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Score every purchaser with the newest fit and store the `clv` table.

    Columns: p_alive, churn_risk, expected_purchases (over the horizon), expected_value
    (average transaction value), clv (discounted, month by month), and the
    frequency/recency/T summary they come from. Export with `tribes export clv`.

    Repeat buyers whose average transaction value is zero or negative (free or refunded
    repeat orders, left out of the spend model) get expected_value 0 and so clv 0;
    their p_alive and expected_purchases are scored as usual.

    [bold]Examples[/bold]

      tribes -w shop clv score --horizon 52w

      tribes -w shop clv score --horizon 26w --discount-rate 0.008 --churn-threshold 0.3
    """

    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with out.progress("clv score") as task:
        res = Workspace(ws).clv.score(horizon=horizon, discount_rate=discount_rate,
                                      threshold=threshold, progress=task.step).summary
    out.result(res)
    out.print(f"scored {res['customers']:,} purchasers with {res['model']} as of "
              f"{res['as_of'][:10]} over {res['horizon']}:")
    out.print(f"  mean P(alive) {res['mean_p_alive']:.2f}; churn risk (P(alive) < "
              f"{res['churn_threshold']}) {res['churn_risk_share']:.1%}")
    out.print(f"  expected purchases {res['expected_purchases']:,.0f}; total CLV "
              f"{res['total_clv']:,.0f} (median {res['median_clv']:,.2f}"
              + ("" if res["top_decile_share"] is None else
                 f"; the top 10% hold {res['top_decile_share']:.0%}") + ")")
    n = res["spend_excluded"]["non_positive_average"]
    if n:
        out.print(f"  {n:,} repeat buyers with a zero or negative average transaction value: "
                  "expected value and CLV 0")
    out.print("Stored in table clv; export with: tribes export clv --out clv.parquet")


@app.command()
def validate(
    ctx: typer.Context,
    calibration_end: CalOpt = None,
    models: Annotated[str | None, typer.Option(
        "--models", help="Comma-separated models to compare (default: all three).",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare the models on a calibration/holdout split: predicted against actual repeat
    purchases in the holdout, by number of purchases before it, and cumulative.

    The split is --calibration-end, else the one of the newest fit.

    [bold]Examples[/bold]

      tribes -w shop clv validate

      tribes -w shop clv validate --calibration-end 1997-09-30 --models bgnbd,pareto_nbd
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    cal = _date(calibration_end)
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    with opened(ws, read_only=True) as run, out.progress("clv validate") as task:
        res = validate_clv(run, calibration_end=cal, models=names, progress=task.step)
    out.result(res)
    out.table(f"Fitted up to {res['calibration_end'][:10]}, checked to "
              f"{res['holdout_end'][:10]}",
              ["model", "log-lik", "holdout", "predicted", "MAE", "cumulative"],
              [(r["model"], f"{r['loglik']:,.0f}", f"{r['holdout']['actual']:,.0f}",
                f"{r['holdout']['predicted']:,.0f} ({_pct(r['holdout']['error_pct'])})",
                f"{r['holdout']['mae']:.3f}",
                _pct(r["holdout"]["cumulative"]["error_pct_at_end"]))
               for r in res["models"]], no_wrap=range(6))
    lowest = res["lowest_mae"]
    for r in res["models"]:
        if r["model"] == lowest:
            _show_holdout(out, r["holdout"], f"{r['model']} (lowest MAE)")
    if res["tied"]:
        out.print(f"[bold]No best model[/bold]: {lowest} has the lowest holdout error per "
                  f"customer, but {', '.join(res['tied'])} tie with it (their errors differ "
                  "by less than chance on this holdout, at 95%)")
        return
    out.print(f"Lowest holdout error per customer: [bold]{lowest}[/bold], better than the "
              "others beyond chance (paired errors, 95%)"
              + ("" if res["stored_model"] in (None, lowest) else
                 f" (stored fit: {res['stored_model']}; tribes clv fit --model {lowest})"))


@app.command()
def churn(
    ctx: typer.Context,
    days: Annotated[int | None, typer.Option(
        "--days", min=1, help="Churned = no event at all in this many days "
        "(default: clv.churn_days, 60).", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Purchase model whose P(alive) warnings are shown (default: "
        "clv.model); every purchase model is scored.", show_default=False)] = None,
    store: Annotated[bool, typer.Option(
        "--store/--no-store", help="Score every customer now with the model that validated "
        "best and store it (churn_scores: the churn risk personas show).")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Which predicts churn better here: P(alive), or gradient boosting on the features?

    Trains gradient boosting on features as of (end - 2 x days), labelled by activity in
    the following days, and tests both it and the P(alive) of every purchase model
    (fitted up to end - days) on the customers as of (end - days): ROC-AUC, Brier score
    and calibration. The model that ranks the test purchasers best (gradient boosting on
    a tie) is refitted on the newest data and scores every customer: at risk when the
    churn probability is 0.5 or more. Personas show that churn risk, naming the model.

    [bold]Examples[/bold]

      tribes -w shop clv churn

      tribes -w shop clv churn --days 30 --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with out.progress("clv churn") as task:
        res = Workspace(ws).clv.churn(days=days, model=model, store=store,
                                      progress=task.step).summary
    out.result(res)
    gb = res["gradient_boosting"]

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    out.print(f"churned = no event in {res['days']} days; trained as of "
              f"{res['train_as_of'][:10]}, tested as of {res['test_as_of'][:10]} "
              f"({res['n_test']:,} customers, {res['purchasers_in_test']:,} purchasers)")
    out.table(None, ["model", "customers", "churn rate", "ROC-AUC", "Brier"], [
        ("gradient boosting (all)", gb["all"]["n"], gb["all"].get("churn_rate"),
         f(gb["all"]["auc"]), f(gb["all"]["brier"])),
        ("gradient boosting (purchasers)", gb["purchasers"]["n"],
         gb["purchasers"].get("churn_rate"), f(gb["purchasers"]["auc"]),
         f(gb["purchasers"]["brier"])),
        *[(f"1 - P(alive), {m} (purchasers)", pa["n"], pa.get("churn_rate"),
           f(pa["auc"]), f(pa["brier"])) for m, pa in res["p_alive_models"].items()],
    ])
    for label, scores in (("gradient boosting (all)", gb["all"]),
                          ("gradient boosting (purchasers)", gb["purchasers"]),
                          *[(f"P(alive), {m}", pa)
                            for m, pa in res["p_alive_models"].items()]):
        if scores.get("note"):
            out.print(f"{label}: {scores['note']}")
    for w in res["p_alive"]["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {w}")
    if gb.get("left_out"):
        out.print("Left out of gradient boosting (no information): " + "; ".join(
            f"{c} ({why})" for c, why in gb["left_out"].items()))
    if res["better_on_purchasers"]:
        out.print(f"Best on purchasers here: [bold]{res['better_on_purchasers']}[/bold]")
    done = res["scored"]
    if done and done["stored"]:
        share = done["at_risk_share"]
        out.print(f"Stored churn risk of {done['customers']:,} customers from "
                  f"{done['label']}: {'-' if share is None else f'{share:.0%}'} at risk "
                  f"(churn probability >= {done['threshold']}); personas show it.")
    elif done:
        out.print(f"[yellow]Nothing stored:[/yellow] {done['reason']}")


@app.command()
def show(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The stored fit: parameters with standard errors, holdout check and warnings."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        res = last_fit(engine)
    out.result(res)
    out.print(f"[bold]{res['model']}[/bold] fitted up to {res['calibration_end'][:10]} "
              f"({res['fit_id']}): {_params(res['params'], res['se'])}")
    if res["spend_params"]:
        out.print(f"spend (Gamma-Gamma): {_params(res['spend_params'], res['spend_se'])}"
                  + _excluded(res.get("spend_excluded")))
    _show_holdout(out, res["holdout"], "Holdout check")
    for w in res["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {w}")
