"""What report sections get: the engine, the workspace, and helpers for charts and tables."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tribes.engine import Engine
from tribes.settings import RunSettings
from tribes.workspace import RunContext, Workspace

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2",
           "#FF9DA6", "#9D755D", "#BAB0AC"]


@dataclass
class ReportContext:
    ws: Workspace
    engine: Engine
    settings: RunSettings
    figures: int = 0
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def run(self) -> RunContext:
        """The context the stages take (a section that computes, e.g. monitoring)."""
        return RunContext(self.ws, self.engine, self.settings)

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a value shared by several sections once."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def figure(self, fig: Any, height: int = 360) -> str:
        """A Plotly figure as an inline div (the library itself is embedded once)."""
        self.figures += 1
        margin = {"l": 50, "r": 20, "t": 40, "b": 40}
        margin.update({k: v for k in margin if (v := getattr(fig.layout.margin, k)) is not None})
        fig.update_layout(height=height, margin=margin,
                          template="plotly_white", font={"size": 12})
        return str(fig.to_html(full_html=False, include_plotlyjs=False,
                               config={"displaylogo": False, "responsive": True}))


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.3g}"
    return str(v)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f"<td class='num'>{esc(fmt(v))}</td>" if isinstance(v, (int, float)) and not
        isinstance(v, bool) else f"<td>{esc(fmt(v))}</td>" for v in r) + "</tr>"
        for r in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def empty(message: str) -> str:
    """The panel a section shows when there is not enough data."""
    return f"<div class='empty'>Not enough data: {esc(message)}</div>"
