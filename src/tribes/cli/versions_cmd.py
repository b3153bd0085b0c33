"""``tribes versions``: list, show, compare, activate and roll back segment versions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.store import (
    activation_history,
    active_version,
    diff_versions,
    get_run,
    list_versions,
    members,
    open_engine,
    refresh_history,
)

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Segment versions: list, show, diff, activate, rollback, history.")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every segment version, the active one marked."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        rows = list_versions(engine)
    out.result({"versions": rows})
    if not rows:
        out.print("No segment versions yet: tribes segment")
        return
    out.table("Segment versions (* = active; held = waiting for review: tribes versions "
              "activate N)",
              ["", "version", "status", "created (UTC)", "method", "k", "fitted on",
               "members now", "silhouette", "stability"],
              [("*" if r["active"] else "", r["version"], r["status"],
                str(r["created_at"])[:16], r["method"], r["k"], r["customers"],
                r["members"], r["silhouette"], r["stability_ari"]) for r in rows],
              no_wrap=(0, 1, 2, 3, 4))


@app.command()
def show(ctx: typer.Context,
         version: Annotated[int, typer.Argument(help="Version number.")],
         json_out: JsonOpt = False) -> None:
    """One version: method, parameters, features, metrics and segment sizes (when it
    was fitted), and the refreshes of its memberships since."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        run = get_run(engine, version)
        active = active_version(engine) == version
        refreshes = refresh_history(engine, version)
        m = members(engine, version)
        counts = engine.execute(m.group_by("segment_id").aggregate(n=m.count()))
    now = {int(r.segment_id): int(r.n) for r in counts.itertuples()}
    run["active"] = active
    run["refreshes"] = refreshes
    out.result(run)
    out.print(f"version [bold]{version}[/bold]{' (active)' if active else ''}: "
              f"{run['method']}, k = {run['k']}, created {str(run['created_at'])[:19]} UTC, "
              f"parent {run['parent_version']}")
    out.print("features: " + ", ".join(run["features"]))
    # scikit-learn and SciPy (a second to import) for versions show, not the others
    from tribes.models import stability_warning

    jaccard = (run["metrics"].get("stability") or {}).get("jaccard") or {}
    out.table("Segments", ["segment", "name", "customers at fit", "share",
                           "members now", "stability (Jaccard)"],
              [(s["segment_id"], s["name"], s["size"], f"{s['share']:.1%}",
                now.get(int(s["segment_id"]), 0),
                jaccard.get(str(s["segment_id"]))) for s in run["segments"]])
    warning = stability_warning(run["metrics"])
    if warning:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    if refreshes:
        last = refreshes[-1]
        out.print(f"memberships refreshed {len(refreshes)} time(s), last "
                  f"{str(last['refreshed_at'])[:16]} UTC ({last['trigger']}): "
                  f"{last['customers']:,} members, {last['new']:,} new, "
                  f"{last['moved']:,} moved, {last['left']:,} left")


@app.command()
def diff(ctx: typer.Context,
         a: Annotated[int, typer.Argument(help="Older version.")],
         b: Annotated[int, typer.Argument(help="Newer version.")],
         json_out: JsonOpt = False) -> None:
    """Migration matrix (customers moving between segments), ARI and size changes."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        d = diff_versions(engine, a, b)
    out.result(d)
    out.print(f"versions {a} → {b}: adjusted Rand index {d['ari']:.3f} over "
              f"{d['customers_in_both']:,} customers in both")
    cols = sorted({c for row in d["matrix"].values() for c in row}, key=int)
    out.table(f"Customers from segment (rows, v{a}) to segment (columns, v{b})",
              ["from \\ to", *cols],
              [(i, *[row.get(c, 0) for c in cols]) for i, row in d["matrix"].items()])
    out.table("Sizes", ["segment", f"v{a}", f"v{b}", "change"],
              [(s["segment_id"], s["size_a"], s["size_b"], s["change"]) for s in d["sizes"]])


@app.command("activate")
def activate_(ctx: typer.Context,
              version: Annotated[int, typer.Argument(help="Version to make active.")],
              json_out: JsonOpt = False) -> None:
    """Make an earlier (or later) version the active one; its memberships are refreshed
    at once with its own model (today's customers in, erased or excluded ones out)."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    # scikit-learn (a second to import) for the refresh, not for the other commands
    from tribes.ops import activate

    with open_engine(ws) as engine:
        res = activate(engine, version)
    out.result(res)
    out.print(f"version {version} is active (was {res['previous']})")
    _show_refresh(out, res)


@app.command()
def rollback(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Re-activate the version that was active before the current one; again, the one
    before that (activations are a stack). Its memberships are refreshed at once."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    from tribes.ops import rollback as roll_back

    with open_engine(ws) as engine:
        res = roll_back(engine)
    out.result(res)
    out.print(f"rolled back: version {res['active']} is active again (was "
              f"{res['previous']})")
    _show_refresh(out, res)


def _show_refresh(out: Output, res: dict[str, Any]) -> None:
    if res.get("refresh"):
        out.print(f"memberships: {res['refresh']['summary']}; personas follow at the next "
                  "tribes run")
    elif res.get("note"):
        out.print(f"[yellow]warning:[/yellow] {res['note']}")


@app.command("history")
def history_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every activation, oldest first: which version, when, how (create, activate,
    rollback) and which was active before."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        rows = activation_history(engine)
    out.result({"activations": rows})
    out.table("Activations", ["when (UTC)", "action", "version", "was active"],
              [(str(r["activated_at"])[:19], r["action"], r["version"], r["previous"])
               for r in rows], no_wrap=(0, 1))
