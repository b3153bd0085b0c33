"""What the Python API returns: a summary (what ``--json`` prints) and tables that
convert to pandas, pyarrow or polars, with an HTML view and a chart in a notebook."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from tribes.errors import InputError
from tribes.store import open_engine

if TYPE_CHECKING:
    import pyarrow as pa

    from tribes.workspace import Workspace as _Workspace

PREVIEW_ROWS = 10


class Table:
    """A table of the workspace, read when converted (so it is current then).

    ``ws.table("customer_features").to_pandas()``; ``.to_pyarrow()``, ``.to_polars()``
    (with polars installed); ``len(table)``; ``table.columns``. In a notebook it shows
    its first rows.
    """

    def __init__(self, ws: _Workspace, name: str, *,
                 query: Callable[[Any], Any] | None = None) -> None:
        self._ws = ws
        self.name = name
        self._query = query  # engine -> the table's expression (default: the stored table)

    def _expr(self, engine: Any) -> Any:
        if self._query is not None:
            return self._query(engine)
        if not engine.has_table(self.name):
            raise InputError(f"the workspace has no table '{self.name}' yet",
                             code="E_NO_TABLE")
        return engine.table(self.name)

    def _read(self, limit: int | None = None) -> pa.Table:
        with open_engine(self._ws, read_only=True) as engine:
            t = self._expr(engine)
            return engine.to_pyarrow(t if limit is None else t.limit(limit))

    def to_pyarrow(self) -> pa.Table:
        """The whole table as a ``pyarrow.Table``."""
        return self._read()

    def to_pandas(self) -> pd.DataFrame:
        """The whole table as a pandas DataFrame."""
        return self._read().to_pandas()

    def to_polars(self) -> Any:
        """The whole table as a polars DataFrame (``pip install polars``)."""
        try:
            import polars as pl
        except ImportError:
            raise InputError("to_polars() needs polars: pip install polars",
                             code="E_DEPENDENCY") from None
        return pl.from_arrow(self._read())

    def head(self, n: int = PREVIEW_ROWS) -> pd.DataFrame:
        """The first ``n`` rows as a pandas DataFrame."""
        return self._read(limit=n).to_pandas()

    @property
    def columns(self) -> list[str]:
        """The table's column names."""
        return list(self._read(limit=0).column_names)

    def __len__(self) -> int:
        with open_engine(self._ws, read_only=True) as engine:
            return int(engine.scalar(self._expr(engine).count()))

    def __repr__(self) -> str:
        return f"<tribes Table {self.name}>"

    def _repr_html_(self) -> str:
        head = self.head()
        caption = f"<p><b>{html.escape(self.name)}</b> ({len(self):,} rows)</p>"
        return caption + head.to_html(max_cols=20, index=False)


@dataclass
class Result:
    """What a step did: ``summary`` is exactly what the CLI prints with ``--json``;
    ``table`` (when the step made one) converts with ``to_pandas()`` and friends."""

    summary: dict[str, Any]
    table: Table | None = None
    title: str = ""
    # the step's own typed report (IngestSummary, PrepReport, SegmentReport...), if any
    report: Any = field(default=None, repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def keys(self) -> Any:
        """The summary's keys (``result["loaded"]`` reads one)."""
        return self.summary.keys()

    def _table(self) -> Table:
        if self.table is None:
            raise InputError(f"{self.title or 'this result'} has no table", code="E_NO_TABLE")
        return self.table

    def to_pandas(self) -> pd.DataFrame:
        """The result's table as a pandas DataFrame."""
        return self._table().to_pandas()

    def to_pyarrow(self) -> pa.Table:
        """The result's table as a ``pyarrow.Table``."""
        return self._table().to_pyarrow()

    def to_polars(self) -> Any:
        """The result's table as a polars DataFrame (``pip install polars``)."""
        return self._table().to_polars()

    def _repr_html_(self) -> str:
        out = f"<p><b>{html.escape(self.title)}</b></p>" if self.title else ""
        out += _summary_html(self.summary)
        if self.table is not None:
            out += self.table._repr_html_()
        return out


@dataclass
class FrameResult(Result):
    """A result whose table is computed, not stored (a funnel, a retention matrix)."""

    frame: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_pandas(self) -> pd.DataFrame:
        """The computed table as a pandas DataFrame (a copy)."""
        return self.frame.copy()

    def to_pyarrow(self) -> pa.Table:
        """The computed table as a ``pyarrow.Table``."""
        import pyarrow as pa

        return pa.Table.from_pandas(self.frame, preserve_index=False)

    def to_polars(self) -> Any:
        """The computed table as a polars DataFrame (``pip install polars``)."""
        try:
            import polars as pl
        except ImportError:
            raise InputError("to_polars() needs polars: pip install polars",
                             code="E_DEPENDENCY") from None
        return pl.from_pandas(self.frame)

    def _repr_html_(self) -> str:
        out = f"<p><b>{html.escape(self.title)}</b></p>" if self.title else ""
        figure = getattr(self, "figure", None)
        if figure is not None and not self.frame.empty:
            out += figure().to_html(full_html=False, include_plotlyjs="cdn")
        return out + self.frame.to_html(index=False)


class FunnelResult(FrameResult):
    """A funnel: one row per group and step (count, step and overall conversion,
    drop-off, median time from the previous step)."""

    def figure(self) -> Any:
        """A Plotly funnel chart, one trace per group."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for group, rows in self.frame.groupby("group", sort=False):
            fig.add_trace(go.Funnel(name=str(group), y=rows["step"], x=rows["count"],
                                    textinfo="value+percent initial"))
        fig.update_layout(title=self.title)
        return fig


class RetentionResult(FrameResult):
    """A retention matrix: one row per cohort, one column per period (share of the
    cohort active in it; empty where the period is after the end of the data)."""

    def figure(self) -> Any:
        """A Plotly heat map of the shares (the first group's, with a breakdown)."""
        import plotly.graph_objects as go

        frame = self.frame
        if "group" in frame.columns and not frame.empty:
            frame = frame[frame.group == frame.group.iloc[0]].drop(columns=["group"])
        z = frame.drop(columns=["cohort", "size"]).astype(float)
        fig = go.Figure(go.Heatmap(z=z.to_numpy(), x=list(z.columns),
                                   y=[str(c) for c in frame["cohort"]],
                                   colorscale="Blues", zmin=0, zmax=1))
        fig.update_layout(title=self.title, yaxis_autorange="reversed",
                          xaxis_title="periods after the cohort started")
        return fig


@dataclass
class MigrationResult(FrameResult):
    """Customers moving between two dates: one row per (from, to) label with its
    customers; ``matrix()`` pivots it, ``customers()`` names the customers of a cell."""

    members: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def matrix(self) -> pd.DataFrame:
        """Counts as a table: a row per label on the first date, a column per label on
        the second."""
        return self.report.matrix()

    def customers(self, start: str | None = None, end: str | None = None) -> pd.DataFrame:
        """``customer_key``, ``from``, ``to`` of the customers with label ``start`` on the
        first date and ``end`` on the second (either may be left out)."""
        self.report.check_labels(start, end)
        m = self.members
        keep = pd.Series(True, index=m.index)
        if start is not None:
            keep &= m["from"] == start
        if end is not None:
            keep &= m["to"] == end
        return m[keep].reset_index(drop=True)

    def figure(self) -> Any:
        """A Plotly heat map of the counts."""
        import plotly.graph_objects as go

        m = self.matrix()
        fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=list(m.columns), y=list(m.index),
                                   colorscale="Blues", text=m.to_numpy(),
                                   texttemplate="%{text}"))
        fig.update_layout(title=self.title, xaxis_title=f"on {self.summary['to']['date']}",
                          yaxis_title=f"on {self.summary['from']['date']}",
                          yaxis_autorange="reversed")
        return fig


def _summary_html(summary: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                   f"<td>{html.escape(_short(v))}</td></tr>"
                   for k, v in summary.items() if not isinstance(v, (list, dict)))
    return f"<table>{rows}</table>" if rows else ""


def _short(v: Any, width: int = 80) -> str:
    text = f"{v:,.4g}" if isinstance(v, float) else str(v)
    return text if len(text) <= width else text[: width - 1] + "…"
