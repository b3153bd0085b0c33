"""Planted data-quality defects.

Each defect touches a disjoint set of rows, and each defect row carries exactly
one problem:

* web ``E_TS_PARSE``  – the timestamp is unparseable text (never empty);
* web ``E_NO_ID``     – ``cookie_id`` and ``user_id`` (and ``email``) are empty;
* web ``E_TS_FUTURE`` – the timestamp lies five years after the real instant;
* app ``duplicates``  – an event re-sent later with identical content;
* purchases ``E_AMOUNT`` – a line with a negative amount.

``login`` and ``begin_checkout`` web rows are never damaged, so identity
stitching and the purchase/session link survive the defects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from tribes.synth.model import EventType

__all__ = [
    "FUTURE_SHIFT_S",
    "GARBAGE_TIMESTAMPS",
    "WebDefects",
    "garbage_timestamps",
    "negate_amounts",
    "plan_duplicates",
    "plan_web_defects",
]

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

FUTURE_SHIFT_S = 5 * 365 * 86400
# Unparseable by any sane timestamp parser; no commas, quotes, or NA tokens.
GARBAGE_TIMESTAMPS: tuple[str, ...] = (
    "not-a-date",
    "2026-13-45T99:00:00Z",
    "2026-02-30T25:61:00Z",
    "17726193O2000",
    "#VALUE!",
    "ts_error",
    "??/??/???? ??:??",
    "0000-00-00T00:00:00Z",
)


@dataclass(frozen=True)
class WebDefects:
    """Row positions (disjoint) of the planted web defects."""

    ts_parse: I64
    no_id: I64
    future: I64

    def counts(self) -> dict[str, int]:
        """Return the manifest counts keyed by expected outcome."""
        return {
            "E_TS_PARSE": int(self.ts_parse.size),
            "E_NO_ID": int(self.no_id.size),
            "E_TS_FUTURE": int(self.future.size),
        }


def plan_web_defects(etype: I64, rate: float, rng: np.random.Generator) -> WebDefects:
    """Choose disjoint rows for each web defect.

    Parameters
    ----------
    etype : ndarray of int64
        Canonical event type per web row.
    rate : float
        Approximate share of rows per defect kind.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    WebDefects
        Row positions of each defect kind.
    """
    eligible = np.flatnonzero((etype != EventType.LOGIN) & (etype != EventType.BEGIN_CHECKOUT))
    k = rng.binomial(eligible.size, rate, size=3) if eligible.size else np.zeros(3, dtype=np.int64)
    k = np.minimum(k, eligible.size // 3)
    chosen = rng.choice(eligible, int(k.sum()), replace=False) if k.sum() else eligible[:0]
    a, b = int(k[0]), int(k[0] + k[1])
    return WebDefects(
        ts_parse=np.sort(chosen[:a]), no_id=np.sort(chosen[a:b]), future=np.sort(chosen[b:])
    )


def garbage_timestamps(k: int, rng: np.random.Generator) -> pa.Array:
    """Return ``k`` unparseable timestamp strings.

    Parameters
    ----------
    k : int
        Number of strings.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    pyarrow.Array
        Garbage timestamp text.
    """
    vocab = pa.array(GARBAGE_TIMESTAMPS, type=pa.string())
    return vocab.take(pa.array(rng.integers(0, len(GARBAGE_TIMESTAMPS), k)))


def plan_duplicates(n: int, rate: float, rng: np.random.Generator) -> tuple[I64, int]:
    """Plan at-least-once re-deliveries of app events.

    Parameters
    ----------
    n : int
        Number of original rows.
    rate : float
        Share of rows delivered twice.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    ndarray of int64
        Row selection (originals in order, each duplicate shortly after its
        original) to apply with ``take``.
    int
        Number of duplicate rows added.
    """
    k = int(rng.binomial(n, rate)) if n else 0
    src = np.sort(rng.choice(n, k, replace=False)) if k else np.zeros(0, dtype=np.int64)
    after = np.minimum(src + rng.integers(0, 40, k), n - 1)
    key = np.concatenate([np.arange(n, dtype=np.int64) * 2, after * 2 + 1])
    order = np.argsort(key, kind="stable")
    return np.concatenate([np.arange(n, dtype=np.int64), src])[order], k


def negate_amounts(amount: F64, rate: float, rng: np.random.Generator) -> tuple[F64, int]:
    """Flip the sign of a few purchase line amounts.

    Parameters
    ----------
    amount : ndarray of float64
        Positive line amounts.
    rate : float
        Share of lines to damage.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    ndarray of float64
        Amounts with some negated.
    int
        Number of negated lines.
    """
    n = amount.size
    k = int(rng.binomial(n, rate)) if n else 0
    out = amount.copy()
    if k:
        out[rng.choice(n, k, replace=False)] *= -1.0
    return out, k
