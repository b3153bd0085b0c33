"""BG/NBD: beta-geometric / negative binomial distribution model of repeat buying.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy
Way: An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2), 275-284.

While active, a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``; after every
repeat purchase they drop out with probability ``p ~ Beta(a, b)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaln, expit, gammaln

from tribes.models.clv.btyd import BTYDModel
from tribes.models.clv.special import log_hyp2f1


class BGNBD(BTYDModel):
    """BG/NBD with parameters ``r, alpha`` (purchase rate) and ``a, b`` (dropout)."""

    name = "bgnbd"
    param_names = ("r", "alpha", "a", "b")

    def _loglik(self, theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
                ) -> np.ndarray:
        r, alpha, a, b = theta
        # paper eq. (6): alive at T, or dropped out right after the x-th purchase (x > 0)
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
        gone = np.where(x > 0, betaln(a + 1, np.maximum(b + x - 1, 1e-300))
                        - (r + x) * np.log(alpha + tx), -np.inf)
        return common + np.logaddexp(alive, gone)

    def _log_odds_dead(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self._theta()
        with np.errstate(divide="ignore"):
            lo = (np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
                  + (r + x) * (np.log(alpha + T) - np.log(alpha + tx)))
        return np.where(x > 0, lo, -np.inf)

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        x, tx, t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        return expit(-self._log_odds_dead(x, tx, t))

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any
                           ) -> np.ndarray:
        # paper eq. (10)
        r, alpha, a, b = self._theta()
        x, tx, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        t = np.asarray(t, dtype=float)
        z = t / (alpha + big_t + t)
        log_f = log_hyp2f1(r + x, b + x, a + b + x - 1, z)
        rest = -np.expm1((r + x) * np.log((alpha + big_t) / (alpha + big_t + t)) + log_f)
        return (a + b + x - 1) / (a - 1) * rest * self.p_alive(x, tx, big_t)

    def expected_purchases_new(self, t: Any) -> np.ndarray:
        # paper eq. (9)
        r, alpha, a, b = self._theta()
        t = np.asarray(t, dtype=float)
        log_f = log_hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * -np.expm1(r * np.log(alpha / (alpha + t)) + log_f)
