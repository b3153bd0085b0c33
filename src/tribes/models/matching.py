"""Stable segment ids: a new version's clusters take the ids of the previous version's
segments they are the same group as.

A model numbers its clusters as it likes; customers should not see "segment 3" turn into
"segment 1" because the model was fitted again. :func:`match_segment_ids` pairs the new
labels with the old segments by member overlap (the Hungarian method on Jaccard
similarity); :func:`stable_ids` asks the store for the overlap with the active version.
"""

from __future__ import annotations

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.engine import Engine
from tribes.store import active_version, next_segment_id, overlap_with

# member overlap (Jaccard) above which a new segment is "the same group" as an old one
SAME_GROUP = 0.5
NOISE = -1


def match_segment_ids(overlap: pd.DataFrame, new_sizes: dict[int, int],
                      old_sizes: dict[int, int], next_id: int,
                      tie_key: dict[int, str] | None = None) -> dict[int, int]:
    """New model labels -> segment ids, keeping the old id of the same group.

    ``overlap``: customers per (new label, old segment id). Labels are paired by the
    Hungarian method on Jaccard overlap; a pair with Jaccard >= 0.5 keeps the old id, every
    other label gets a fresh id from ``next_id`` on (largest first; groups of one size by
    ``tie_key``, e.g. their smallest customer key, so the ids do not depend on the order
    in which a model numbered its clusters). Noise stays -1.
    """
    tie = tie_key or {}
    labels = sorted(new_sizes, key=lambda lab: (-new_sizes[lab], tie.get(lab, ""), lab))
    mapping: dict[int, int] = {NOISE: NOISE} if NOISE in new_sizes else {}
    real = [lab for lab in labels if lab != NOISE]
    olds = [o for o in old_sizes if o != NOISE]
    if real and olds and not overlap.empty:
        jac = np.zeros((len(real), len(olds)))
        for i, lab in enumerate(real):
            for j, o in enumerate(olds):
                inter = (float(overlap.at[lab, o])  # type: ignore[arg-type]
                         if lab in overlap.index and o in overlap.columns else 0.0)
                jac[i, j] = inter / (new_sizes[lab] + old_sizes[o] - inter)
        from scipy.optimize import linear_sum_assignment  # slow to import: on use

        rows, cols = linear_sum_assignment(-jac)
        for i, j in zip(rows, cols, strict=True):
            if jac[i, j] >= SAME_GROUP:
                mapping[real[i]] = olds[j]
    for lab in real:
        if lab not in mapping:
            mapping[lab] = next_id
            next_id += 1
    return mapping


def stable_ids(engine: Engine, labels: ir.Table, sizes: dict[int, int],
               tie_key: dict[int, str] | None = None) -> tuple[dict[int, int], int | None]:
    """Segment ids for the labels of a new fit, carried over from the active version.

    Parameters
    ----------
    engine : Engine
        The workspace's engine.
    labels : ibis.expr.types.Table
        ``customer_key`` and ``label`` of every customer under the new fit.
    sizes : dict
        Customers per label.
    tie_key : dict, optional
        Per label, a text that orders groups of one size (see :func:`match_segment_ids`).

    Returns
    -------
    mapping : dict
        Label -> segment id.
    parent : int or None
        The active version the ids were matched with (None: the first version).
    """
    parent = active_version(engine)
    overlap, old_sizes = (overlap_with(engine, labels, parent) if parent is not None
                          else (pd.DataFrame(), {}))
    mapping = match_segment_ids(overlap, sizes, old_sizes, next_segment_id(engine), tie_key)
    return mapping, parent
