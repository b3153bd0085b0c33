"""Shared plumbing of the commands: the workspace the options name, JSON or human
output, tables, progress."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tribes.cli.options import Options, to_json
from tribes.config import parse_duration
from tribes.errors import ConfigError, InputError
from tribes.settings import RunSettings
from tribes.store import open_run
from tribes.workspace import RunContext, Workspace, open_workspace

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object with the result to stdout.")
]
CohortOpt = Annotated[str | None, typer.Option(
    "--cohort", help="Only members of this behavioral cohort (see: tribes cohorts define).",
    show_default=False)]


@dataclass
class State(Options):
    """The options given before the command, and the workspace they name."""

    def open(self) -> Workspace:
        return open_workspace(self.workspace, backend=self.backend)


def run_settings(ws: Workspace, *, session_timeout: str | None = None,
                 as_of: datetime | None = None) -> RunSettings:
    """The run's settings: ``tribes.toml`` with the command's options on top (the CLI is
    one of the edges where they are resolved, once per command)."""
    return RunSettings.resolve(ws.config, session_timeout=session_timeout, as_of=as_of)


def opened(ws: Workspace, *, read_only: bool = False, settings: RunSettings | None = None
           ) -> contextlib.AbstractContextManager[RunContext]:
    """The workspace's engine opened for the command, with the run's settings
    (:func:`run_settings` unless given): what the stages get."""
    return open_run(ws, settings or run_settings(ws), read_only=read_only)


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        # the root keeps the plain Options (it does not load the workspace's modules)
        given = root.obj if isinstance(root.obj, Options) else Options()
        root.obj = State(**dataclasses.asdict(given))
    return root.obj


def writable(path: Path) -> Path:
    """``path``, to be written: refused when it is a symbolic link, since writing
    through it would replace whatever file it points to."""
    if path.is_symlink():
        raise InputError(f"'{path}' is a symbolic link (to '{os.readlink(path)}'); tribes "
                         "does not write through links: give the path of a file itself",
                         code="E_OUT_LINK")
    return path


def parse_when(text: str, option: str, *, durations: bool = False) -> datetime:
    """An ISO date or time given to ``option`` (UTC unless it has an offset); with
    ``durations``, also a duration from now (``90d``)."""
    if durations:
        try:
            return datetime.now(UTC) + parse_duration(text)
        except ConfigError:
            pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        hint = "a duration (90d, 12w) or " if durations else ""
        raise InputError(f"{option} '{text}' is not {hint}an ISO date or time (2026-01-31 "
                         "or 2026-01-31T12:00)", code="E_DATE") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _min_width(columns: Sequence[str], rows: Sequence[Sequence[Any]],
               whole: Sequence[bool]) -> int:
    """The narrowest a table can be without cutting a word of a header or a cell (a
    column kept whole: its longest cell), with the separators between columns."""
    total = 0
    for i, c in enumerate(columns):
        cells = [_text(r[i]) for r in rows]
        words = [w for text in [c, *cells] for w in text.split()] or [""]
        need = max(len(w) for w in words)
        if whole[i]:
            need = max([need, *(len(x) for x in cells)])
        total += need + 3
    return total


class Output:
    """Where a command's result goes: one JSON object on stdout, or rich text."""

    def __init__(self, ctx: typer.Context, json_flag: bool = False) -> None:
        st = state(ctx)
        self.json = json_flag or st.json
        self.quiet = st.verbosity < 0
        self.console = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    def result(self, obj: dict[str, Any]) -> None:
        """Emit the machine-readable result (only with --json)."""
        if self.json:
            sys.stdout.write(to_json(obj) + "\n")
            sys.stdout.flush()

    def print(self, *items: Any) -> None:
        if not self.json and not self.quiet:
            self.console.print(*items)

    def table(self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]],
              *, no_wrap: Sequence[int] = (0,)) -> None:
        """A table on the console; numbers right-aligned, columns ``no_wrap`` kept whole."""
        if self.json or self.quiet:
            return
        numeric = [bool(rows) and all(isinstance(r[i], (int, float)) or r[i] is None
                                      for r in rows) for i in range(len(columns))]
        whole = [numeric[i] or i in no_wrap for i in range(len(columns))]
        if _min_width(columns, rows, whole) > self.console.width:
            self._as_list(title, columns, rows)
            return
        t = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
        for i, c in enumerate(columns):
            t.add_column(c, justify="right" if numeric[i] else "left", overflow="fold",
                         no_wrap=whole[i])
        for r in rows:
            t.add_row(*[_cell(v) for v in r])
        self.console.print(t)

    def _as_list(self, title: str | None, columns: Sequence[str],
                 rows: Sequence[Sequence[Any]]) -> None:
        """A table too wide for the terminal: one block per row, a line per column."""
        if title:
            self.console.print(Text(title, style="bold"))
        width = max((len(c) for c in columns), default=0)
        for r in rows:
            for c, v in zip(columns, r, strict=True):
                line = Text(f"  {c.ljust(width)}  ", style="bold")
                line.append_text(v if isinstance(v, Text) else Text(_text(v)))
                self.console.print(line, overflow="fold")
            self.console.print()

    @contextlib.contextmanager
    def progress(self, description: str, total: float | None = None) -> Iterator[Any]:
        """A progress bar (``total`` given) or spinner on stderr; hidden when quiet."""
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self.err, transient=True,
                      disable=self.quiet or not self.err.is_terminal) as bar:
            task = bar.add_task(description, total=total)
            yield _Task(bar, task, description)


class _Task:
    def __init__(self, bar: Progress, task: Any, description: str) -> None:
        self.bar, self.task, self.base = bar, task, description

    def step(self, name: str) -> None:
        self.bar.update(self.task, description=f"{self.base}: {name}")

    def update(self, completed: float, total: float | None = None) -> None:
        self.bar.update(self.task, completed=completed, total=total)


def _text(v: Any) -> str:
    """A value as the plain text of a table cell."""
    if isinstance(v, Text):
        return v.plain
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _cell(v: Any) -> str | Text:
    """A value as a rich table cell: styled :class:`~rich.text.Text` keeps its style; any
    other value is data, not markup ("[features] composite" stays as written)."""
    return v if isinstance(v, Text) else escape(_text(v))
