"""The ``tribes`` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tribes import __version__
from tribes.cli import (
    ab_cmd,
    activate_cmd,
    anomalies_cmd,
    audit_cmd,
    clv_cmd,
    cohorts_cmd,
    consents_cmd,
    customer_cmd,
    export_cmd,
    features_cmd,
    forget_cmd,
    identity_cmd,
    ingest_cmd,
    init_cmd,
    journeys_cmd,
    keys_cmd,
    monitor_cmd,
    personas_cmd,
    prep_cmd,
    quarantine_cmd,
    report_cmd,
    run_cmd,
    segment_cmd,
    serve_cmd,
    status_cmd,
    stream_cmd,
    synth_cmd,
    trends_cmd,
    triggers_cmd,
    validate_cmd,
    versions_cmd,
    webhooks_cmd,
)
from tribes.cli.common import State, setup_logging, to_json
from tribes.errors import TribesError

app = typer.Typer(
    name="tribes",
    help=(
        "Behavioral customer segmentation: ingest events, build features, find segments "
        "and act on them.\n\n"
        "Start with [bold]tribes init shop[/bold], then "
        "[bold]tribes --workspace shop ingest events.csv --source web[/bold] and "
        "[bold]tribes --workspace shop status[/bold]."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tribes {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", envvar="TRIBES_WORKSPACE",
                     help="Workspace directory (default ./tribes-workspace).",
                     show_default=False),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="Query engine: duckdb (default) or pyspark.",
                     show_default=False),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print each command's result as one JSON object.")
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="More log output (-vv for debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    if backend is not None and backend not in ("duckdb", "pyspark"):
        raise typer.BadParameter("use duckdb or pyspark", param_hint="--backend")
    verbosity = -1 if quiet else verbose
    ctx.obj = State(workspace=workspace, backend=backend, json=json_out, verbosity=verbosity)
    setup_logging(verbosity)


init_cmd.register(app)
ingest_cmd.register(app)
status_cmd.register(app)
app.add_typer(quarantine_cmd.app, name="quarantine")
app.add_typer(consents_cmd.app, name="consents")
prep_cmd.register(app)
app.add_typer(features_cmd.app, name="features")
export_cmd.register(app)
customer_cmd.register(app)
app.add_typer(identity_cmd.app, name="identity")
app.add_typer(segment_cmd.app, name="segment")
app.add_typer(versions_cmd.app, name="versions")
app.add_typer(personas_cmd.app, name="personas")
validate_cmd.register(app)
report_cmd.register(app)
app.add_typer(journeys_cmd.app, name="journeys")
app.add_typer(cohorts_cmd.app, name="cohorts")
app.add_typer(anomalies_cmd.app, name="anomalies")
trends_cmd.register(app)
app.add_typer(clv_cmd.app, name="clv")
run_cmd.register(app)
monitor_cmd.register(app)
activate_cmd.register(app)
ab_cmd.register(app)
synth_cmd.register(app)
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(keys_cmd.app, name="keys")
forget_cmd.register(app)
serve_cmd.register(app)
stream_cmd.register(app)
app.add_typer(triggers_cmd.app, name="triggers")
app.add_typer(webhooks_cmd.app, name="webhooks")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a TribesError is shown as ``error [CODE]: message`` with no traceback."""
    args = sys.argv[1:] if argv is None else argv
    # every file and folder this process makes is its owner's alone: workspaces hold
    # personal data (tribes.workspace.make_private keeps the workspace folder closed)
    os.umask(0o077)
    try:
        app(args=args, prog_name="tribes", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except TribesError as exc:
        if "--json" in args:
            sys.stdout.write(to_json(exc.to_dict()) + "\n")
        sys.stderr.write(f"error [{exc.code}]: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing of the unfinished step was stored\n")
        return 130
    return 0


def entry() -> None:
    sys.exit(main())
