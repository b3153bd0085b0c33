"""Report sections. Each module here registers its sections with :func:`section`; adding
a section means adding one module (they are imported automatically)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from tribes.report.context import ReportContext


@dataclass(frozen=True)
class Section:
    order: int
    anchor: str
    title: str
    render: Callable[[ReportContext], str]


SECTIONS: list[Section] = []


def section(order: int, anchor: str, title: str) -> Callable[[Callable[[ReportContext], str]],
                                                            Callable[[ReportContext], str]]:
    """Register ``render(ctx) -> html`` as a report section, placed by ``order``."""
    def register(fn: Callable[[ReportContext], str]) -> Callable[[ReportContext], str]:
        SECTIONS[:] = [s for s in SECTIONS if s.anchor != anchor]
        SECTIONS.append(Section(order, anchor, title, fn))
        return fn
    return register


def all_sections() -> list[Section]:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return sorted(SECTIONS, key=lambda s: s.order)
