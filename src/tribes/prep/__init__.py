"""Preparation: categorical standardization, missing values, identity stitching, sessions."""

from tribes.prep.incremental import touched_after
from tribes.prep.prep_stage import PrepReport, last_prep, prep_params, run_prep
from tribes.prep.sessions import mark_session_starts, number_sessions, parts, sessionize

__all__ = [
    "PrepReport",
    "last_prep",
    "mark_session_starts",
    "number_sessions",
    "parts",
    "prep_params",
    "run_prep",
    "sessionize",
    "touched_after",
]
