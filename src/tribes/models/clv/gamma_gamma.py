"""Gamma-Gamma model of the average value of a customer's transactions.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value Curves
for Customer Base Analysis. *Journal of Marketing Research* 42(4), 415-430; written out
in Fader, P. S. & Hardie, B. G. S. (2013), "The Gamma-Gamma Model of Monetary Value".

Each transaction's value is ``Gamma(p, nu)`` around the customer's mean ``p / nu``, with
``nu ~ Gamma(q, gamma)`` across customers. It assumes the average value does not depend
on how often the customer buys: :func:`independence_check` measures that.

The model has no room for an average value of zero or less, yet real order files hold
free and fully refunded orders. By default the repeat buyers whose average is not
positive are left out of the fit and counted (``excluded_``, as the reference
implementation does), and their expected average value is 0: their repeat purchases
brought nothing in, so none is forecast. ``strict=True`` refuses such data instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import gammaln

from tribes.errors import ModelError
from tribes.models.clv.base import MLEstimator, compress


class GammaGamma(MLEstimator):
    """Gamma-Gamma spend model with parameters ``p, q, gamma``.

    Parameters
    ----------
    max_iter, random_state
        As in :class:`~tribes.models.clv.base.MLEstimator`.
    strict
        Refuse to fit when a repeat buyer's average value is zero or negative, instead of
        leaving those buyers out.
    """

    name = "gamma_gamma"
    param_names = ("p", "q", "gamma")

    def __init__(self, max_iter: int = 1000, random_state: int = 0,
                 strict: bool = False) -> None:
        super().__init__(max_iter=max_iter, random_state=random_state)
        self.strict = strict

    def fit(self, frequency: Any, monetary: Any, weights: Any = None) -> GammaGamma:
        """Fit on the repeat buyers: ``frequency`` repeat transactions (> 0) with mean
        value ``monetary``. Rows with no repeat purchase are left out, and so are repeat
        buyers whose mean value is zero or negative (counted in ``excluded_``), unless
        ``strict``, which raises on them.

        Returns
        -------
        self
        """
        x = np.asarray(frequency, dtype=float).ravel()
        m = np.asarray(monetary, dtype=float).ravel()
        keep = (x > 0) & np.isfinite(m)
        bad = keep & (m <= 0)
        if bad.any() and self.strict:
            raise ModelError(
                f"{int(bad.sum())} repeat buyers have a zero or negative average "
                "transaction value; the Gamma-Gamma model needs positive values "
                "(leave out free orders, or net refunds elsewhere; or fit without "
                "--strict-spend / clv.strict_spend, which leaves them out)",
                code="E_MODEL_INPUT")
        excluded = {"non_positive_average": int(bad.sum())}
        keep &= ~bad
        if weights is not None:
            weights = np.asarray(weights, dtype=float).ravel()[keep]
        x, m = x[keep], m[keep]
        if len(x) < 2:
            raise ModelError(f"the spend model needs at least 2 repeat buyers; found {len(x)}",
                             code="E_MODEL_DATA")
        if np.ptp(m) == 0:
            raise ModelError("every repeat buyer has the same average transaction value; "
                             "there is no spread for the spend model to learn",
                             code="E_MODEL_DATA")
        (x, m), w = compress([x, m], weights)
        self._fit(lambda theta: self._loglik(theta, x, m), self._starts(x, m), w)
        self.excluded_ = excluded
        return self

    def _starts(self, x: np.ndarray, m: np.ndarray) -> list[np.ndarray]:
        # p = 1, q = 2: gamma = mean value
        return [np.array([0.0, np.log(2.0), np.log(max(float(np.mean(m)), 1e-6))]),
                np.zeros(3)]

    def _loglik(self, theta: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        # the note's eq. (3), the density of the observed mean m over x transactions
        p, q, g = theta
        px = p * x
        return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
                + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(g + m * x))

    def expected_value(self, frequency: Any, monetary: Any) -> np.ndarray:
        """Conditional expected average transaction value (the note's eq. 5); customers
        without repeat purchases get the population mean ``p gamma / (q - 1)``, repeat
        buyers whose mean value is zero or negative (left out of the fit) get 0."""
        p, q, g = self._theta()
        x = np.asarray(frequency, dtype=float)
        raw = np.asarray(monetary, dtype=float)
        m = np.nan_to_num(raw)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (g + m * x) * p / (p * x + q - 1)
        value = np.where(raw <= 0, 0.0, value)
        return np.where(x > 0, value, self.mean_value())

    def mean_value(self) -> float:
        """Population mean transaction value ``p gamma / (q - 1)`` (infinite if q <= 1)."""
        p, q, g = self._theta()
        return float(p * g / (q - 1)) if q > 1 else float("inf")


def independence_check(frequency: Any, monetary: Any) -> dict[str, Any]:
    """Correlation of repeat frequency and average value among the repeat buyers the
    spend model is fitted on (average value > 0).

    The Gamma-Gamma model assumes none; above 0.3 in absolute value its values are
    doubtful (Fader & Hardie report 0.11 on CDNOW).
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary, dtype=float)
    keep = (x > 0) & np.isfinite(m) & (m > 0)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(m[keep]) == 0:
        return {"pearson": None, "ok": True, "n": int(keep.sum())}
    r = float(np.corrcoef(x[keep], m[keep])[0, 1])
    return {"pearson": r, "ok": abs(r) <= 0.3, "n": int(keep.sum())}
