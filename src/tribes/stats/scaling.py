"""The preprocessing of a segmentation run: select, log1p, impute, scale, optional PCA.

Fitted on a sample with NumPy, stored with the segment version as plain numbers, and
re-applied either in NumPy (:meth:`Transform.apply`) or in the engine as Ibis expressions
(:meth:`Transform.exprs`), so new customers get exactly the same transform.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.errors import InputError

Scaler = Literal["standard", "minmax", "robust"]
SCALERS = ("standard", "minmax", "robust")
# skewed money/count features: log1p by default
DEFAULT_LOG1P = ("frequency", "monetary", "aov", "n_events", "n_sessions", "sessions_per_week",
                 "avg_session_duration_s", "support_contacts", "events_per_session")
# a null of these means "none": fill 0 rather than a typical value
DEFAULT_ZERO_FILL = ("aov", "cart_abandonment_rate")


@dataclass(frozen=True)
class Transform:
    """A fitted feature transform (all parameters are plain numbers, JSON-serializable)."""

    features: tuple[str, ...]
    log1p: tuple[bool, ...]
    fill: tuple[float, ...]  # imputation value per feature, on the raw scale
    scaler: str
    center: tuple[float, ...]
    scale: tuple[float, ...]
    pca: tuple[tuple[float, ...], ...] = ()  # component rows over the scaled features
    pca_mean: tuple[float, ...] = ()
    pca_explained: tuple[float, ...] = ()

    @property
    def n_outputs(self) -> int:
        return len(self.pca) if self.pca else len(self.features)

    def apply(self, df: pd.DataFrame) -> np.ndarray:
        """Transform a frame with the feature columns into model coordinates."""
        return self.apply_array(df[list(self.features)].to_numpy(dtype=float,
                                                                 na_value=np.nan))

    def apply_array(self, x: np.ndarray) -> np.ndarray:
        """The same for a float array whose columns are ``features`` in order."""
        x = np.where(np.isnan(x), np.array(self.fill), x)
        logs = np.array(self.log1p)
        x[:, logs] = np.log1p(np.maximum(x[:, logs], 0.0))
        z = (x - np.array(self.center)) / np.array(self.scale)
        if self.pca:
            z = (z - np.array(self.pca_mean)) @ np.array(self.pca).T
        return z

    def exprs(self, t: ir.Table) -> list[ir.FloatingValue]:
        """The same transform of every row of ``t`` as engine expressions."""
        scaled: list[ir.FloatingValue] = []
        for name, lg, fill, c, s in zip(self.features, self.log1p, self.fill, self.center,
                                        self.scale, strict=True):
            v = t[name].cast("float64").fill_null(fill)
            if lg:
                v = (ibis.greatest(v, 0.0) + 1.0).ln()
            scaled.append((v - c) / s)
        if not self.pca:
            return scaled
        out = []
        for comp in self.pca:
            total: ir.FloatingValue = ibis.literal(0.0)
            for w, z, m in zip(comp, scaled, self.pca_mean, strict=True):
                total = total + (z - m) * w
            out.append(total)
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transform:
        fields: dict[str, Any] = {k: (tuple(tuple(r) for r in v) if k == "pca" else
                                      tuple(v) if isinstance(v, list) else v)
                                  for k, v in d.items()}
        return cls(**fields)


def fit_transform(
    df: pd.DataFrame,
    features: list[str],
    *,
    log1p: list[str] | None = None,
    scaler: str = "standard",
    impute: str = "median",
    zero_fill: list[str] | None = None,
    pca: float | int | None = None,
) -> Transform:
    """Fit the transform on ``df``.

    Parameters
    ----------
    features
        Feature columns, in order.
    log1p
        Columns to log1p (default: the skewed money/count features among ``features``).
    scaler
        ``standard`` (mean, std), ``minmax`` (min, range) or ``robust`` (median, IQR).
    impute
        Fill for nulls: ``median``, ``mean`` or ``zero``; ``zero_fill`` columns always get 0
        (their null means "none", e.g. aov of a customer who never bought).
    pca
        Keep this many principal components (int), or enough for this share of variance
        (float in (0, 1)); ``None`` keeps the scaled features.
    """
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise InputError(f"unknown features {missing}; see tribes features describe",
                         code="E_FEATURE")
    non_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(df[f])
                   or pd.api.types.is_bool_dtype(df[f])]
    if non_numeric:
        raise InputError(f"features must be numeric: {non_numeric}", code="E_FEATURE")
    if scaler not in SCALERS:
        raise InputError(f"unknown scaler '{scaler}'; use {', '.join(SCALERS)}",
                         code="E_CONFIG")
    if impute not in ("median", "mean", "zero"):
        raise InputError(f"unknown imputation '{impute}'; use median, mean or zero",
                         code="E_CONFIG")
    logs = set(DEFAULT_LOG1P if log1p is None else log1p)
    zeros = set(DEFAULT_ZERO_FILL if zero_fill is None else zero_fill)
    x = df[features].to_numpy(dtype=float, na_value=np.nan)
    fill = []
    for j, f in enumerate(features):
        col = x[:, j]
        ok = col[~np.isnan(col)]
        if f in zeros or impute == "zero" or ok.size == 0:
            fill.append(0.0)
        else:
            fill.append(float(np.median(ok) if impute == "median" else ok.mean()))
    t = Transform(features=tuple(features), log1p=tuple(f in logs for f in features),
                  fill=tuple(fill), scaler=scaler, center=(0.0,) * len(features),
                  scale=(1.0,) * len(features))
    raw = t.apply(df)  # filled and logged, not yet scaled
    if scaler == "standard":
        center, scale = raw.mean(axis=0), raw.std(axis=0)
    elif scaler == "minmax":
        center, scale = raw.min(axis=0), raw.max(axis=0) - raw.min(axis=0)
    else:
        q1, med, q3 = np.percentile(raw, [25, 50, 75], axis=0)
        center, scale = med, q3 - q1
    scale = np.where(scale > 0, scale, 1.0)
    t = Transform(features=t.features, log1p=t.log1p, fill=t.fill, scaler=scaler,
                  center=tuple(float(v) for v in center), scale=tuple(float(v) for v in scale))
    if pca is None:
        return t
    z = t.apply(df)
    mean = z.mean(axis=0)
    _, sv, vt = np.linalg.svd(z - mean, full_matrices=False)
    ratio = sv ** 2 / max(float((sv ** 2).sum()), 1e-300)
    if isinstance(pca, float) and 0 < pca < 1:
        n = int(np.searchsorted(np.cumsum(ratio), pca) + 1)
    else:
        n = int(pca)
    n = max(1, min(n, len(features)))
    return Transform(features=t.features, log1p=t.log1p, fill=t.fill, scaler=scaler,
                     center=t.center, scale=t.scale,
                     pca=tuple(tuple(float(v) for v in row) for row in vt[:n]),
                     pca_mean=tuple(float(v) for v in mean),
                     pca_explained=tuple(float(v) for v in ratio[:n]))
