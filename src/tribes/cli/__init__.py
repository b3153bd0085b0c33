"""The ``tribes`` command line.

The root knows every command by :data:`COMMANDS` (its name, the module that defines it
and its help line) and imports a command's module only when that command runs or shows
its own help: ``tribes --help`` loads no command, and a command loads only its own module
(which imports what it uses at module level).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

# typer carries its own copy of click
from typer._click import Command as ClickCommand
from typer._click import Context as ClickContext
from typer._click import HelpFormatter
from typer._click.shell_completion import CompletionItem
from typer.core import MarkupMode, TyperCommand, TyperGroup
from typer.main import get_group

from tribes import __version__
from tribes.cli.options import Options, setup_logging, to_json
from tribes.errors import TribesError


@dataclass(frozen=True)
class Command:
    """A command or group of the root. ``module`` defines it with ``register(app)`` (which
    adds its commands to the root) or, for a group, as its Typer ``app``; ``help`` is the
    line ``tribes --help`` shows (the first paragraph of the command's own help)."""

    name: str
    module: str
    help: str


# in the order of tribes --help: the commands, then the groups
COMMANDS: tuple[Command, ...] = (
    Command("init", "tribes.cli.init_cmd",
            "Create a workspace: tribes.toml, a secret key (mode 0600) and the database."),
    Command("ingest", "tribes.cli.ingest_cmd",
            "Validate, pseudonymize, deduplicate and load files as one batch."),
    Command("status", "tribes.cli.status_cmd",
            "Show what the workspace holds: tables, batches, quarantine, missing values, "
            "consents."),
    Command("prep", "tribes.cli.prep_cmd",
            "Stitch identities and sessionize every stored event (idempotent)."),
    Command("export", "tribes.cli.export_cmd",
            "Export customer features, sessions, segments or CLV scores (customers without "
            "consent are left out)."),
    Command("customer", "tribes.cli.customer_cmd",
            "Show one customer: linked ids, sessions, latest events, features and consent."),
    Command("validate", "tribes.cli.validate_cmd",
            "Check that segments differ on business KPIs."),
    Command("report", "tribes.cli.report_cmd",
            "Write the HTML report: data quality, features, k selection, segments, a map of "
            "customers, persona cards, KPIs with significance tests, version history."),
    Command("trends", "tribes.cli.trends_cmd",
            "Daily (or weekly) series with STL decomposition, a forecast with 95% intervals "
            "(exponential smoothing or SARIMA, lower AIC; backtest MAPE on the last "
            "--horizon periods) and anomalous periods (robust residual z-score > 5). A model "
            "that does not beat a seasonal naive forecast (the value one season earlier) on "
            "the backtest is replaced by that forecast, and a note says so."),
    Command("run", "tribes.cli.run_cmd",
            "Run every stage after ingest, each only when its input changed: prep "
            "(stitching, sessions), features, cohorts, a refresh of the active segment "
            "version's memberships (new and changed customers get their segment from its "
            "own model; erased or excluded ones leave), and the drift check against it "
            "(tribes monitor)."),
    Command("run-history", "tribes.cli.run_cmd",
            "Earlier runs of tribes run, newest first: what became of the segments (a "
            "refresh of the active version's memberships, a new version and why), the "
            "decision and the steps."),
    Command("schedule", "tribes.cli.run_cmd",
            "Run tribes run by itself: set, show or remove the schedule. tribes serve runs it "
            "(re-reading it, so a change applies to a running service); so does "
            "--foreground. A run missed while neither ran is made up once at the next "
            "start."),
    Command("monitor", "tribes.cli.monitor_cmd",
            "Compare today's customers with the active segment version: PSI and "
            "Kolmogorov-Smirnov per feature, and the segment shares its model gives today "
            "(chi-square). Breaches of the \\[monitor] thresholds in tribes.toml become "
            "alerts: in the alerts table (tribes alerts list), the log, and webhooks "
            "subscribed to alert.*."),
    Command("activate", "tribes.cli.activate_cmd",
            "Push segment memberships of the active version to a CRM/CDP: the changes since "
            "the last sync, as signed, batched upserts and removals with idempotency keys "
            "(an http target), or CSV/Parquet files with a manifest (a file target). "
            "Customers who refused the target's consent purposes are never sent, and are "
            "removed if they were."),
    Command("activate-history", "tribes.cli.activate_cmd", "Earlier syncs, newest first."),
    Command("synth", "tribes.cli.synth_cmd",
            "Generate realistic messy data with planted segments and planted defects."),
    Command("forget", "tribes.cli.forget_cmd",
            "Erase a person from every table and every segment version, for good."),
    Command("serve", "tribes.cli.serve_cmd",
            "Serve the REST API: segments, personas, customer lookups, ingest, erasure, "
            "metrics."),
    Command("stream", "tribes.cli.stream_cmd",
            "Consume events from a Redis stream: online state and segments, rules, "
            "triggers."),
    Command("quarantine", "tribes.cli.quarantine_cmd",
            "Inspect, repair (replay), export and drop quarantined rows (rows that did not "
            "load)."),
    Command("consents", "tribes.cli.consents_cmd",
            "Consent records: summary per purpose, or one customer's history."),
    Command("features", "tribes.cli.features_cmd",
            "Build [bold]customer_features[/bold]: one row per customer (DESIGN §5)."),
    Command("identity", "tribes.cli.identity_cmd",
            "Repair identity stitching: merge two customers, split an id out of one, block a "
            "shared device. Rules are kept, listed and undoable; every later prep applies "
            "them."),
    Command("segment", "tribes.cli.segment_cmd",
            "Segment the customers of [bold]customer_features[/bold] into a new active "
            "version."),
    Command("versions", "tribes.cli.versions_cmd",
            "Segment versions: list, show, diff, activate, rollback, history."),
    Command("personas", "tribes.cli.personas_cmd",
            "Personas of the active segment version: name, size, campaign type."),
    Command("journeys", "tribes.cli.journeys_cmd",
            "Journeys: Markov transitions between events, conversion funnels."),
    Command("cohorts", "tribes.cli.cohorts_cmd",
            "Cohorts: retention of customers grouped by when they arrived."),
    Command("anomalies", "tribes.cli.anomalies_cmd",
            "Anomalies: customers who behave unlike the others."),
    Command("clv", "tribes.cli.clv_cmd",
            "Customer lifetime value: how likely each customer is still active, how much "
            "they will buy and what it is worth (BG/NBD, Pareto/NBD, MBG/NBD with "
            "Gamma-Gamma spend)."),
    Command("alerts", "tribes.cli.monitor_cmd",
            "Alerts raised by tribes monitor: list and acknowledge."),
    Command("ab", "tribes.cli.ab_cmd",
            "A/B tests by segment: uplift with intervals, corrected p-values, sample-ratio "
            "check, CUPED."),
    Command("audit", "tribes.cli.audit_cmd",
            "The audit log: who changed or read what, when. List or verify it."),
    Command("keys", "tribes.cli.keys_cmd",
            "API keys for tribes serve: create (shown once), list, revoke."),
    Command("triggers", "tribes.cli.triggers_cmd",
            "Real-time rules: list them, try them on a file of events, see the newest "
            "triggers."),
    Command("webhooks", "tribes.cli.webhooks_cmd",
            "Webhook endpoints for triggers: add, list, remove, dead letters, replay."),
)
_BY_NAME = {c.name: c for c in COMMANDS}
_LISTING = "tribes.cli.listing"  # ctx.meta flag: a listing needs only names and help lines


def load(command: Command, markup: MarkupMode = "rich") -> ClickCommand:
    """Import ``command``'s module and build the command as the root would have."""
    module = importlib.import_module(command.module)
    sub = typer.Typer(rich_markup_mode=markup)
    register = getattr(module, "register", None)
    if register is not None:
        register(sub)
    else:
        sub.add_typer(module.app, name=command.name)
    return get_group(sub).commands[command.name]


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` by their help lines, and imports a command's
    module only when the command is looked up to run (or to show its own help)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # stand-ins with a name and a help line, for the listings: help, completion, and
        # the close matches suggested for a mistyped command
        self.commands = {c.name: TyperCommand(c.name, help=c.help) for c in COMMANDS}

    def get_command(self, ctx: ClickContext, cmd_name: str) -> ClickCommand | None:
        if cmd_name not in _BY_NAME or ctx.meta.get(_LISTING):
            return self.commands.get(cmd_name)
        return load(_BY_NAME[cmd_name], self.rich_markup_mode)

    def format_help(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        with _listing(ctx):
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: ClickContext, incomplete: str) -> list[CompletionItem]:
        with _listing(ctx):
            return super().shell_complete(ctx, incomplete)


@contextlib.contextmanager
def _listing(ctx: ClickContext) -> Iterator[None]:
    ctx.meta[_LISTING] = True
    try:
        yield
    finally:
        del ctx.meta[_LISTING]


app = typer.Typer(
    name="tribes",
    cls=LazyGroup,
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
    ctx.obj = Options(workspace=workspace, backend=backend, json=json_out, verbosity=verbosity)
    setup_logging(verbosity)


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
