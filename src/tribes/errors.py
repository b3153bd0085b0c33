"""The one error hierarchy of tribes.

Every error a user can cause carries a stable ``code`` (documented, safe to match on)
and an actionable message. The CLI prints ``code: message`` without a traceback and
exits with a non-zero status.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any


def printable(text: str) -> str:
    """``text`` safe to show on a terminal: control and format characters (escape
    sequences, carriage returns, bidirectional overrides...), which can come from the
    data a message quotes, are written as escapes (``\\x1b``); lines and tabs stay."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


class TribesError(Exception):
    """Base class of every error tribes raises on purpose. Its message is made
    :func:`printable`: it may quote the user's data."""

    code = "E_TRIBES"
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None) -> None:
        message = printable(message)
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


class ConfigError(TribesError):
    """tribes.toml or an option is invalid."""

    code = "E_CONFIG"
    exit_code = 2


class WorkspaceError(TribesError):
    """The workspace is missing, incomplete or locked."""

    code = "E_WORKSPACE"
    exit_code = 2


class InputError(TribesError):
    """An input file or its layout cannot be used."""

    code = "E_INPUT"
    exit_code = 3


class NoSegmentVersionError(InputError):
    """There is no segment version yet, or none is active: nothing to read segments from.

    Parameters
    ----------
    purpose : str
        What needed a version, shown in the message ("to monitor").
    held : sequence of int
        Versions stored but never made active (held for review), if any.
    """

    code = "E_NO_SEGMENTS"

    def __init__(self, purpose: str = "", held: Sequence[int] = ()) -> None:
        what = f"segment version {purpose}".rstrip()
        if held:
            listed = ", ".join(str(v) for v in held)
            message = (f"no active {what}: version{'s' if len(held) > 1 else ''} {listed} "
                       f"{'are' if len(held) > 1 else 'is'} held for review; activate one "
                       "with: tribes versions activate N, or create one with: "
                       "tribes segment")
        else:
            message = f"no {what} yet; create one with: tribes segment"
        super().__init__(message)
        self.purpose, self.held = purpose, tuple(held)


class MissingColumnError(InputError):
    """A required column could not be found in the input."""

    code = "E_MISSING_COLUMN"


class EngineError(TribesError):
    """The query engine failed."""

    code = "E_ENGINE"
    exit_code = 4


class DependencyError(TribesError):
    """An optional dependency is not installed."""

    code = "E_DEPENDENCY"
    exit_code = 5


class ModelError(TribesError):
    """A model cannot be fitted to the data at hand (too little data, no convergence)."""

    code = "E_MODEL"
    exit_code = 6


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name`` (case-insensitive), or None if none is close."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[match[0]] if match else None


def missing_column(target: str, available: Iterable[str], *, hint_flag: str = "--map",
                   spellings: Iterable[str] = ()) -> MissingColumnError:
    """Build the error for a required column that is not in the input, with a suggestion.

    The suggestion is the available column closest to the target's name or to any of
    its usual ``spellings``.
    """
    available = list(available)
    guess = None
    for name in (target, *spellings):
        guess = closest(name, available)
        if guess is not None:
            break
    if guess is not None:
        msg = (
            f"column '{target}' not found; did you mean '{guess}'? "
            f"map it with {hint_flag} {target}={guess}"
        )
    else:
        shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
        msg = (
            f"column '{target}' not found in the input (columns: {shown}); "
            f"map one with {hint_flag} {target}=<column>"
        )
    return MissingColumnError(msg)
