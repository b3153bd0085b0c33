"""Analysis: journeys, cohorts, trends and anomalies (DESIGN §4), computed in the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tribes.analysis.ab import (
    AB_METRICS,
    Design,
    analyze_experiment,
    outcomes,
    read_assignments,
    segment_names,
)
from tribes.analysis.cohorts import (
    define_cohort,
    profile,
    refresh_after_prep,
    refresh_cohorts,
    retention,
    retention_by,
)
from tribes.analysis.funnels import funnel, split_steps
from tribes.analysis.journeys import transitions
from tribes.analysis.paths import (
    following,
    leading_to,
    path_heads,
    sankey_figure,
    sankey_from_heads,
    sankey_links,
    session_paths,
    top_paths,
)
from tribes.analysis.rules import RULE_LANGUAGE
from tribes.analysis.timeseries import TREND_METRICS, daily_series, incomplete_periods, trends
from tribes.lazy import lazy_names

if TYPE_CHECKING:
    from tribes.analysis.outliers import OUTLIER_METHODS, embed_2d, find_outliers

# served on first use: their modules import scikit-learn
_LAZY = {
    "OUTLIER_METHODS": "tribes.analysis.outliers",
    "embed_2d": "tribes.analysis.outliers",
    "find_outliers": "tribes.analysis.outliers",
}

__all__ = [
    "AB_METRICS",
    "OUTLIER_METHODS",
    "RULE_LANGUAGE",
    "TREND_METRICS",
    "Design",
    "analyze_experiment",
    "daily_series",
    "define_cohort",
    "embed_2d",
    "find_outliers",
    "following",
    "funnel",
    "incomplete_periods",
    "leading_to",
    "outcomes",
    "path_heads",
    "profile",
    "read_assignments",
    "refresh_after_prep",
    "refresh_cohorts",
    "retention",
    "retention_by",
    "sankey_figure",
    "sankey_from_heads",
    "sankey_links",
    "segment_names",
    "session_paths",
    "split_steps",
    "top_paths",
    "transitions",
    "trends",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
