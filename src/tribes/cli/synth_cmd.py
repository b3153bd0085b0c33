"""``tribes synth``: generate messy multi-source data with planted segments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output
from tribes.synth import SynthConfig, generate


def synth(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write into.")] = Path(
        "data"),
    customers: Annotated[int, typer.Option("--customers", "-n", min=1,
                                           help="Number of customers.")] = 20000,
    days: Annotated[int, typer.Option("--days", min=7, help="Length of the period.")] = 180,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 7,
    start: Annotated[str, typer.Option("--start", help="First day (ISO date).")] = "2026-01-01",
    web_format: Annotated[str, typer.Option("--web-format",
                                            help="csv (gzip) or parquet for web files.")] = "csv",
    chunk: Annotated[int, typer.Option(
        "--chunk", min=100, help="Customers generated per chunk (memory bound).")] = 20000,
    json_out: JsonOpt = False,
) -> None:
    """Generate realistic messy data with planted segments and planted defects.

    Writes web clickstream, app events, purchases, support tickets, customer profiles,
    consents, the planted segment of every customer (ground_truth.csv) and a manifest of
    the planted defects (manifest.json). Generation streams in chunks, so 10M+ events
    need little memory.

    [bold]Example[/bold]: tribes synth --customers 20000 --days 180 --seed 7 --out data/
    """
    out = Output(ctx, json_out)
    if web_format not in ("csv", "parquet"):
        raise typer.BadParameter("use csv or parquet", param_hint="--web-format")
    cfg = SynthConfig(out=out_dir, customers=customers, days=days, seed=seed, start=start,
                      web_format="parquet" if web_format == "parquet" else "csv",
                      chunk_customers=chunk)
    with out.progress("generating", total=customers) as task:
        manifest = generate(cfg, progress=lambda done, total: task.update(done, total))
    out.result(manifest)
    rows = manifest.get("rows", {})
    out.table(f"Wrote {out_dir}", ["file kind", "rows"], list(rows.items()))
    segments = manifest.get("segments", {})
    if segments:
        out.table("Planted segments", ["segment", "customers"], list(segments.items()))
    out.print(f"Ground truth: {out_dir / 'ground_truth.csv'}; defects: {out_dir / 'manifest.json'}")


def register(app: typer.Typer) -> None:
    app.command()(synth)
