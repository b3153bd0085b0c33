"""``tribes run``: the whole pipeline after ingest, for cron or Airflow."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, state
from tribes.cli.features_cmd import show_features
from tribes.cli.prep_cmd import TimeoutOpt, show_prep
from tribes.errors import WorkspaceError
from tribes.ops import Schedule, Scheduler, last_run_at, load_schedule, save_schedule, scheduled_run
from tribes.ops import history as runs
from tribes.privacy import audit
from tribes.store import open_engine


def run(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Features from events up to this ISO date or date-time.",
        show_default=False)] = None,
    session_timeout: TimeoutOpt = None,
    resegment: Annotated[bool | None, typer.Option(
        "--resegment/--no-resegment", help="Fit a new segment version now (--resegment) "
        "or not this time (--no-resegment); by default \\[ops] resegment decides "
        "(on-drift: on a critical drift alert).", show_default=False)] = None,
    no_segment: Annotated[bool, typer.Option(
        "--no-segment", hidden=True,
        help="Deprecated spelling of --no-resegment.")] = False,
    no_monitor: Annotated[bool, typer.Option(
        "--no-monitor", help="Skip the drift check.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Recompute every stage, changed input or not.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run every stage after ingest, each only when its input changed: prep (stitching,
    sessions), features, cohorts, a refresh of the active segment version's memberships
    (new and changed customers get their segment from its own model; erased or excluded
    ones leave), and the drift check against it (tribes monitor).

    A refresh is not a new segmentation. A new version (built like the active one: same
    method, features and k; segment ids kept) is fitted only when asked (--resegment),
    when the schedule re-segments, or when \\[ops] resegment says so: on-drift (the
    default) on a critical PSI alert on one of the active version's features. It is
    compared with the active one (migration matrix, ARI, KPI deltas) and made active or
    held for review by \\[ops] activate.

    Idempotent: a second run on the same events changes nothing. The first segment
    version is yours to choose: tribes segment. Every run is kept: tribes run-history.

    [bold]Examples[/bold]

      tribes -w shop run                 # refresh memberships (re-segment on drift)

      tribes -w shop run --resegment     # fit a new version now

      tribes -w shop run --json          # for cron, Airflow: one JSON object
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    if no_segment:
        if resegment:
            raise typer.BadParameter("--no-segment contradicts --resegment",
                                     param_hint="--no-segment")
        out.print("[yellow]warning:[/yellow] --no-segment is deprecated; use --no-resegment")
        resegment = False
    with out.progress("pipeline") as task:
        res = Workspace(ws).run(session_timeout=session_timeout, as_of=as_of,
                                resegment=resegment, monitor=not no_monitor, force=force,
                                progress=task.step)
    rep = res.report
    out.result(res.summary)
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
    if rep.refresh is not None:
        r = rep.refresh
        out.print(f"Segments: {r.describe()} ({r.customers:,} members)")
    if rep.segment is not None:
        c = rep.comparison or {}
        out.print(f"New version [bold]{rep.segment.version}[/bold] ({rep.segment.method}, "
                  f"k = {rep.segment.k}) because {rep.resegment}: ARI "
                  f"{c.get('ari', float('nan')):.3f} with version {c.get('a')}; "
                  f"[bold]{rep.decision}[/bold]: {rep.reason}")
        if rep.decision == "held":
            out.print(f"  review it: tribes versions diff {c.get('a')} "
                      f"{rep.segment.version}; make it active: tribes versions activate "
                      f"{rep.segment.version}")
    elif rep.refresh is None and "segment" in rep.steps:
        out.print(f"Segments: unchanged ({rep.steps['segment'].removeprefix('skipped: ')})")
    out.print(f"Done in {rep.seconds:.1f}s.")


def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Earlier runs of tribes run, newest first: what became of the segments (a refresh
    of the active version's memberships, a new version and why), the decision and the
    steps.

    [bold]Example[/bold]: tribes -w shop run-history
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        rows = runs(engine, limit)
    out.result({"runs": rows})
    if not rows:
        out.print("No run yet: tribes run")
        return
    out.table("Pipeline runs", ["started (UTC)", "segments", "decision", "ARI", "alerts",
                                "s", "steps done"],
              [(str(r["started_at"])[:16], _outcome(r), r.get("decision") or "",
                "" if r.get("ari") is None else f"{r['ari']:.3f}", r.get("alerts", 0),
                r.get("seconds"),
                ", ".join(k for k, v in (r.get("steps") or {}).items() if v == "done"))
               for r in rows])


def _outcome(r: dict[str, Any]) -> str:
    """What a run did to the segments (runs before refreshes existed: the new version)."""
    if r.get("outcome"):
        return str(r["outcome"])
    return f"new version {r['version']}" if r.get("version") is not None else ""


def schedule(
    ctx: typer.Context,
    every: Annotated[str | None, typer.Option(
        "--every", help="hourly, daily, weekly, or a duration after the previous run (6h, "
        "2d).", show_default=False)] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="When in the period: ':15' (hourly), '03:00' (daily), 'mon 03:00' "
        "(weekly).", show_default=False)] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of --at, e.g. Europe/Paris.")
                  ] = "UTC",
    resegment: Annotated[bool | None, typer.Option(
        "--resegment/--refresh-only", help="Each scheduled run fits a new segment version "
        "(the periodic re-segmentation), or only refreshes the active version's "
        "memberships and re-segments as \\[ops] resegment says (default: "
        "--resegment).", show_default=False)] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the schedule.")] = False,
    foreground: Annotated[bool, typer.Option(
        "--foreground", help="Run the schedule in this terminal until Ctrl-C (where no "
        "tribes serve runs).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run tribes run by itself: set, show or remove the schedule. tribes serve runs it
    (re-reading it, so a change applies to a running service); so does --foreground. A
    run missed while neither ran is made up once at the next start.

    The schedule is the periodic re-segmentation: each scheduled run fits a new segment
    version when the features changed (as tribes run --resegment). With --refresh-only
    it runs tribes run as it is: memberships refreshed, a new version only as \\[ops]
    resegment says.

    [bold]Examples[/bold]

      tribes -w shop schedule --every weekly --at "mon 03:00"

      tribes -w shop schedule --every daily --at 02:30 --refresh-only

      tribes -w shop schedule                 # show it, the last and the next run

      tribes -w shop schedule --off
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    if off:
        save_schedule(ws, None)
        audit(ws, "schedule.off")
        out.result({"schedule": None})
        out.print("Schedule removed.")
        return
    current = load_schedule(ws)
    if every is not None:
        current = Schedule(every=every, at=at or "", tz=tz,
                           since=datetime.now(UTC).isoformat(),
                           resegment=resegment is not False)
        save_schedule(ws, current)
        audit(ws, "schedule.set", detail={"every": every, "at": at, "tz": tz,
                                          "resegment": current.resegment})
    elif at is not None:
        raise typer.BadParameter("give --every with --at", param_hint="--at")
    elif resegment is not None:
        raise typer.BadParameter("give --every with --resegment or --refresh-only",
                                 param_hint="--refresh-only")
    if current is None:
        out.result({"schedule": None})
        out.print("No schedule. Set one: tribes schedule --every weekly --at \"mon 03:00\"")
        return
    busy = False
    try:
        last = last_run_at(ws, wait=0)  # not worth waiting for
    except WorkspaceError as exc:
        if exc.code != "E_LOCKED":
            raise
        last, busy = None, True  # tribes serve holds the database (and runs the schedule)
    ref = last or (datetime.fromisoformat(current.since) if current.since else None)
    nxt = max(current.next_after(ref) if ref else datetime.now(UTC), datetime.now(UTC))
    out.result({"schedule": current.__dict__, "description": current.describe(),
                "last_run": last.isoformat() if last else None, "next_run": nxt.isoformat()})
    last_text = "unknown (tribes serve holds the database)" if busy else (
        last.isoformat(timespec="minutes") if last else "never")
    out.print(f"Schedule: [bold]{current.describe()}[/bold]; last run {last_text}; next "
              f"{nxt.isoformat(timespec='minutes')}.")
    if not foreground:
        out.print("tribes serve runs it (or: tribes schedule --foreground).")
        return

    runner = Scheduler(ws, lambda: scheduled_run(ws))
    out.print("Running the schedule here; Ctrl-C stops it.")
    runner.start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        runner.stop()
        out.print(f"Stopped after {runner.runs} run(s).")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command("run-history")(history)
    app.command()(schedule)
