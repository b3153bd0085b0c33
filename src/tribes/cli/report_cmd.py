"""``tribes report``: one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, state, writable


def report(
    ctx: typer.Context,
    out_path: Annotated[Path | None, typer.Option(
        "--out", "-o", help="HTML file to write (default: <workspace>/reports/report.html).",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the HTML report: data quality, features, k selection, segments, a map of
    customers, persona cards, KPIs with significance tests, version history.

    One file with every chart embedded: it opens offline, nothing loads from the network.

    [bold]Example[/bold]

      tribes -w shop report --out report.html
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    path = writable(out_path or ws.path / "reports" / "report.html")
    # a report reads stored results only: it opens the workspace read-only
    with out.progress("report") as task:
        res = Workspace(ws).report(path, progress=task.step).summary
    out.result(res)
    out.print(f"report written to [bold]{path}[/bold] ({res['bytes'] / 1e6:.1f} MB, "
              f"{len(res['sections'])} sections, {res['figures']} charts)")


def register(app: typer.Typer) -> None:
    app.command()(report)
