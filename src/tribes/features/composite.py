"""The composite index: first principal component of standardized behavioral features.

Fitted with NumPy on the per-customer table (a sample of it when large) and applied back in
the engine as a linear expression, so no step collects every customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.errors import InputError
from tribes.features.definitions import BY_NAME


@dataclass(frozen=True)
class Composite:
    """A fitted composite index.

    ``loadings`` is the unit first principal axis over the inputs (0 for inputs that did
    not vary); ``explained_variance_ratio`` the share of the standardized variance on it.
    """

    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    loadings: tuple[float, ...]
    explained_variance_ratio: float
    n_fit: int
    oriented_by: str = ""
    notes: list[str] = field(default_factory=list)

    def expr(self, t: ir.Table) -> ir.FloatingValue:
        """The index of every row of ``t`` as an engine expression (nulls count as the mean)."""
        total: ir.FloatingValue = ibis.literal(0.0)
        for name, mean, scale, w in zip(self.features, self.means, self.scales,
                                        self.loadings, strict=True):
            if w == 0.0 or scale == 0.0:
                continue
            z = (t[name].cast("float64") - mean) / scale
            total = total + z.fill_null(0.0) * w
        return total

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """The same index in NumPy (tests, small frames)."""
        x = df[list(self.features)].to_numpy(dtype=float)
        z = (x - np.array(self.means)) / np.where(np.array(self.scales) == 0, 1.0,
                                                  np.array(self.scales))
        z = np.where(np.isnan(z), 0.0, z)
        return z @ np.array(self.loadings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "loadings": dict(zip(self.features, self.loadings, strict=True)),
            "means": dict(zip(self.features, self.means, strict=True)),
            "scales": dict(zip(self.features, self.scales, strict=True)),
            "explained_variance_ratio": self.explained_variance_ratio,
            "n_fit": self.n_fit,
            "oriented_by": self.oriented_by,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Composite:
        """The index :meth:`as_dict` wrote."""
        names = tuple(d["features"])
        return cls(features=names, means=tuple(float(d["means"][n]) for n in names),
                   scales=tuple(float(d["scales"][n]) for n in names),
                   loadings=tuple(float(d["loadings"][n]) for n in names),
                   explained_variance_ratio=float(d["explained_variance_ratio"]),
                   n_fit=int(d["n_fit"]), oriented_by=str(d.get("oriented_by", "")),
                   notes=list(d.get("notes", [])))


def fit_composite(df: pd.DataFrame, features: list[str]) -> Composite:
    """Fit the first principal component of ``features`` (z-scored, population std).

    Missing values count as the column mean. The sign makes the index rise with
    ``monetary`` when it is an input and varies; otherwise with the inputs' business
    direction (more activity and spend up, more recency down).
    """
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise InputError(f"composite inputs not among the features: {missing}",
                         code="E_CONFIG")
    x = df[features].to_numpy(dtype=float)
    means = np.nanmean(x, axis=0) if len(x) else np.zeros(len(features))
    means = np.where(np.isnan(means), 0.0, means)
    centered = np.where(np.isnan(x), 0.0, x - means)
    scales = np.sqrt((centered ** 2).mean(axis=0)) if len(x) else np.zeros(len(features))
    notes = [f"{f} does not vary; left out" for f, s in zip(features, scales, strict=True)
             if s == 0]
    varying = scales > 0
    loadings = np.zeros(len(features))
    ratio = 0.0
    if varying.sum() >= 1 and len(x) >= 2:
        z = centered[:, varying] / scales[varying]
        _, sv, vt = np.linalg.svd(z, full_matrices=False)
        axis = vt[0]
        ratio = float(sv[0] ** 2 / (sv ** 2).sum())
        loadings[varying] = axis
    oriented_by = "direction"
    if "monetary" in features and scales[features.index("monetary")] > 0:
        sign = np.sign(loadings[features.index("monetary")])
        oriented_by = "monetary"
    else:
        direction = np.array([BY_NAME[f].direction if f in BY_NAME else 0 for f in features])
        sign = np.sign(loadings @ direction)
    if sign < 0:
        loadings = -loadings
    return Composite(
        features=tuple(features),
        means=tuple(float(v) for v in means),
        scales=tuple(float(v) for v in scales),
        loadings=tuple(float(v) + 0.0 for v in loadings),
        explained_variance_ratio=ratio,
        n_fit=len(x),
        oriented_by=oriented_by,
        notes=notes,
    )
