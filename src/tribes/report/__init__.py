"""The self-contained HTML report: sections register themselves (``sections/``)."""

from tribes.report.build import build_report

__all__ = ["build_report"]
