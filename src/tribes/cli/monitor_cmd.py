"""``tribes monitor`` (drift against the active version) and ``tribes alerts``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from tribes.cli.common import JsonOpt, Output, run_settings, state
from tribes.monitor import ack as ack_alerts
from tribes.monitor import list_alerts
from tribes.privacy import current_actor
from tribes.store import open_engine

FAIL_ON = ("never", "warning", "critical")


def monitor(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Compute and show; raise no alert and record nothing.")] = False,
    fail_on: Annotated[str, typer.Option(
        "--fail-on", help="Exit with status 3 when an open alert is at least this severe "
        "(never, warning, critical): for cron and CI.")] = "never",
    json_out: JsonOpt = False,
) -> None:
    """Compare today's customers with the active segment version: PSI and
    Kolmogorov-Smirnov per feature, and the segment shares its model gives today
    (chi-square). Breaches of the \\[monitor] thresholds in tribes.toml become alerts: in
    the alerts table (tribes alerts list), the log, and webhooks subscribed to alert.*.

    Build today's features first (tribes run, or tribes features); an alert stays open,
    and is not raised again, until it is acknowledged (tribes alerts ack ID).

    [bold]Examples[/bold]

      tribes -w shop monitor

      tribes -w shop monitor --json --fail-on critical
    """
    # scikit-learn and SciPy (a second to import) for monitor, not for alerts list and ack
    from tribes.ops import monitor_and_notify

    if fail_on not in FAIL_ON:
        raise typer.BadParameter(f"use one of {', '.join(FAIL_ON)}", param_hint="--fail-on")
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with out.progress("monitoring") as task:
        report, delivered = monitor_and_notify(ws, run_settings(ws), dry_run=dry_run,
                                               progress=task.step)
    out.result(report.as_dict() | {"webhooks": delivered})
    cfg = ws.config.monitor
    aged = {a["feature"] for a in report.time_adjusted if a["treatment"] == "aged"}
    out.table(f"Drift of version {report.version} (reference as of "
              f"{report.reference_as_of or '?'}, now as of {report.as_of or '?'})",
              ["feature", "PSI", "KS", "KS p", "mean then", "mean now", "nulls then",
               "nulls now"],
              [(f.feature + (" (aged)" if f.feature in aged else ""),
                _flag(f.psi, cfg.psi_warning, cfg.psi_critical),
                _flag(f.ks, cfg.ks_statistic, None, f.ks_p < cfg.p_value),
                f"{f.ks_p:.2g}", _n(f.mean_ref), _n(f.mean_now), f"{f.null_ref:.1%}",
                f"{f.null_now:.1%}") for f in report.features])
    if report.time_adjusted:
        out.print(f"The as-of moved {report.as_of_moved_days:+.4g} days since the reference:")
        for a in report.time_adjusted:
            out.print(f"  {escape(a['feature'])} {a['treatment']}: {escape(a['reason'])}")
    if report.shares is not None:
        s = report.shares
        out.table(f"Segment shares (chi-square {s.chi2:,.1f}, {s.dof} dof, "
                  f"p = {s.p_value:.2g}, {s.n_now:,} customers)",
                  ["segment", "name", "then", "now", "shift"],
                  [(r["segment_id"], r["name"], f"{r['share_ref']:.1%}",
                    f"{r['share_now']:.1%}", f"{r['shift']:+.1%}") for r in s.segments])
    if report.charts:
        flagged = [c for c in report.charts if c.signals]
        short = {c.note for c in report.charts if c.note}
        out.print(f"Control charts of weekly KPIs: {len(report.charts)} series "
                  f"({', '.join(sorted({c.kpi for c in report.charts}))} per segment), "
                  f"{len(flagged)} with a week outside its limits in the last "
                  f"{cfg.spc_recent_weeks} weeks (limits a stable week falls outside "
                  f"{cfg.spc_false_alarm:.2%} of the time)"
                  + (f"; {'; '.join(sorted(short))}" if short else ""))
        if flagged:
            out.table("Signals", ["segment", "KPI", "week", "value", "limits", "rule"],
                      [(c.segment_id, c.kpi, s["week"], _n(s["value"]),
                        f"{_n(c.lower)} to {_n(c.upper)}", s["rule"])
                       for c in flagged for s in c.signals[:3]])
    for note in report.notes:
        out.print(f"[yellow]note:[/yellow] {escape(note)}")
    if report.new_alerts:
        verb = "would raise" if dry_run else "New"
        out.print(f"\n[bold]{verb} {len(report.new_alerts)} alert(s):[/bold]")
        for a in report.new_alerts:
            out.print(f"  {'' if a['alert_id'] is None else '#' + str(a['alert_id'])} "
                      f"[{_color(a['severity'])}]{a['severity']}[/] {escape(a['message'])}")
    if report.open_alerts:
        out.print(f"Still open: {len(report.open_alerts)} "
                  f"({', '.join('#' + str(a['alert_id']) for a in report.open_alerts)}); "
                  "tribes alerts ack ID closes one.")
    if not report.breached:
        out.print("No threshold breached.")
    if delivered["failed"]:
        out.print(f"[yellow]{delivered['failed']} webhook deliveries failed[/yellow] (in "
                  "the dead-letter table: tribes webhooks deadletters)")
    if fail_on != "never":
        worst = {a["severity"] for a in [*report.new_alerts, *report.open_alerts]}
        if "critical" in worst or (fail_on == "warning" and "warning" in worst):
            raise typer.Exit(3)


def _n(v: float | None) -> str:
    return "" if v is None else f"{v:,.3g}"


def _color(severity: str) -> str:
    return "red" if severity == "critical" else "yellow"


def _severity(severity: str) -> Text:
    return Text(severity, style=_color(severity))


def _flag(v: float, warn: float, crit: float | None, significant: bool = True) -> Text:
    """The figure, red from ``crit``, yellow from ``warn`` (when ``significant``)."""
    if v != v:
        return Text("")
    text = f"{v:.3f}"
    if crit is not None and v >= crit:
        return Text(text, style="red")
    return Text(text, style="yellow" if v >= warn and significant else "")


alerts_app = typer.Typer(help="Alerts raised by tribes monitor: list and acknowledge.",
                         no_args_is_help=True)


@alerts_app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str, typer.Option("--status", help="open, acked or all.")] = "open",
    kind: Annotated[str | None, typer.Option(
        "--kind", help="Only kinds starting so: drift, drift.psi, segment.share, ...",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Alerts, newest first: what, how much, since when.

    [bold]Examples[/bold]

      tribes -w shop alerts list

      tribes -w shop alerts list --status all --kind drift --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        rows = list_alerts(engine, status=status, kind=kind, limit=limit)
    out.result({"alerts": rows})
    if not rows:
        out.print(f"No {'' if status == 'all' else status + ' '}alerts.")
        return
    out.table(f"Alerts ({status})", ["#", "since", "severity", "kind", "subject", "value",
                                     "threshold", "message", "acked"],
              [(a["alert_id"], str(a["created_at"])[:16].replace("T", " "),
                _severity(a["severity"]), a["kind"], a["subject"],
                f"{a['value']:.3g}", f"{a['threshold']:g}", a["message"],
                "" if not a["acked_at"] else f"{a['acked_by']} {str(a['acked_at'])[:10]}")
               for a in rows])


@alerts_app.command()
def ack(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(help="Alert numbers (see: tribes alerts list).")],
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.",
                                             show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Acknowledge alerts: they close, and a breach that persists is raised anew by the
    next check.

    [bold]Example[/bold]

      tribes -w shop alerts ack 12 13 --note "campaign week, expected"
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        done = ack_alerts(engine, ids, actor=current_actor(), note=note)
    out.result({"acked": done})
    out.print(f"Acknowledged {', '.join('#' + str(i) for i in done)}.")


def register(app: typer.Typer) -> None:
    app.command()(monitor)
    app.add_typer(alerts_app, name="alerts")
