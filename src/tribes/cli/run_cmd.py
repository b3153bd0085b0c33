"""``tribes run``: the whole pipeline after ingest, for cron or Airflow."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.cli.features_cmd import show_features
from tribes.cli.prep_cmd import TimeoutOpt, show_prep
from tribes.features.run import parse_as_of


def run(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Features from events up to this ISO date or date-time.",
        show_default=False)] = None,
    session_timeout: TimeoutOpt = None,
    no_segment: Annotated[bool, typer.Option(
        "--no-segment", help="Do not build a new segment version this time.")] = False,
    no_monitor: Annotated[bool, typer.Option(
        "--no-monitor", help="Skip the drift check.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Recompute every stage, changed input or not.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run every stage after ingest, each only when its input changed: prep (stitching,
    sessions), features, cohorts, the drift check against the active version (tribes
    monitor), a new segment version built like the active one (same method, features and
    k; segment ids kept), compared with it (migration matrix, ARI, KPI deltas), made
    active or held for review by [ops] activate in tribes.toml, and its personas.

    Idempotent: a second run on the same events changes nothing. The first segment
    version is yours to choose: tribes segment. Every run is kept: tribes run-history.

    [bold]Examples[/bold]

      tribes -w shop run

      tribes -w shop run --json          # for cron, Airflow: one JSON object
    """
    from tribes.monitor.alerts import notify
    from tribes.monitor.pipeline import run_pipeline

    out = Output(ctx, json_out)
    ws = state(ctx).open()
    when = parse_as_of(as_of) if as_of else None
    with ws.engine() as engine, out.progress("pipeline") as task:
        rep = run_pipeline(ws, engine, as_of=when, session_timeout=session_timeout,
                           resegment=False if no_segment else None,
                           monitor=not no_monitor, force=force, progress=task.step)
    sent = notify(ws, rep.monitor.new_alerts) if rep.monitor else {"sent": 0, "failed": 0}
    out.result(rep.as_dict() | {"webhooks": sent})
    if rep.prep is not None:
        show_prep(out, rep.prep)
    if rep.features is not None:
        show_features(out, rep.features)
    if rep.cohorts:
        out.print("Cohorts refreshed: " + ", ".join(
            f"{c['name']} {c['n_customers']:,}" for c in rep.cohorts))
    out.table("Pipeline", ["step", "outcome"], list(rep.steps.items()))
    if rep.monitor is not None:
        m = rep.monitor
        out.print(f"Drift check: {len(m.new_alerts)} new alert(s), {len(m.open_alerts)} "
                  "still open" + (" (tribes alerts list)" if m.breached else ""))
    if rep.segment is not None:
        c = rep.comparison or {}
        out.print(f"New version [bold]{rep.segment.version}[/bold] ({rep.segment.method}, "
                  f"k = {rep.segment.k}): ARI {c.get('ari', float('nan')):.3f} with version "
                  f"{c.get('a')}; [bold]{rep.decision}[/bold]: {rep.reason}")
        if rep.decision == "held":
            out.print(f"  review it: tribes versions diff {c.get('a')} "
                      f"{rep.segment.version}; make it active: tribes versions activate "
                      f"{rep.segment.version}")
    out.print(f"Done in {rep.seconds:.1f}s.")


def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Earlier runs of tribes run, newest first: steps, the new version and the decision.

    [bold]Example[/bold]: tribes -w shop run-history
    """
    from tribes.monitor.pipeline import history as runs

    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with ws.engine(read_only=True) as engine:
        rows = runs(engine, limit)
    out.result({"runs": rows})
    out.table("Pipeline runs", ["started (UTC)", "new version", "decision", "ARI", "alerts",
                                "s", "steps done"],
              [(str(r["started_at"])[:16], r.get("version"), r.get("decision") or "",
                "" if r.get("ari") is None else f"{r['ari']:.3f}", r.get("alerts", 0),
                r.get("seconds"),
                ", ".join(k for k, v in (r.get("steps") or {}).items() if v == "done"))
               for r in rows])
    if not rows:
        out.print("No run yet: tribes run")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command("run-history")(history)
