"""``tribes run``: the analysis stages after ingest, in order."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.analysis.cohorts import refresh_cohorts
from tribes.cli.common import JsonOpt, Output, state
from tribes.cli.features_cmd import show_features
from tribes.cli.prep_cmd import TimeoutOpt, show_prep
from tribes.features.run import parse_as_of, run_features
from tribes.prep.run import run_prep
from tribes.store.cohorts import list_cohorts


def run(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Features from events up to this ISO date or date-time.",
        show_default=False)] = None,
    session_timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run every stage after ingest: prep (stitch, sessionize), then features, then
    evaluate the stored behavioral cohorts again on the new data.

    Ingest your sources first (tribes ingest ...); later versions add segmentation,
    personas and the report to this pipeline.

    [bold]Example[/bold]

      tribes -w shop run
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    when = parse_as_of(as_of) if as_of else None
    with ws.engine() as engine:
        with out.progress("prep") as task:
            prep = run_prep(ws, engine, session_timeout=session_timeout, progress=task.step)
        show_prep(out, prep)
        with out.progress("features") as task:
            feats = run_features(ws, engine, as_of=when, session_timeout=session_timeout,
                                 progress=task.step)
        show_features(out, feats)
        cohorts = []
        if list_cohorts(engine):
            with out.progress("cohorts"):
                cohorts = refresh_cohorts(engine, consent_mode=ws.config.privacy.consent_mode)
            out.print("Cohorts refreshed: " + ", ".join(
                f"{c['name']} {c['n_customers']:,}" for c in cohorts))
    out.result({"prep": prep.as_dict(), "features": feats.as_dict(),
                "cohorts": [{"name": c["name"], "n_customers": c["n_customers"]}
                            for c in cohorts]})


def register(app: typer.Typer) -> None:
    app.command()(run)
