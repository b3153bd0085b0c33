"""MBG/NBD: the BG/NBD model with a chance of dropping out right after the first purchase.

Batislam, E. P., Denizel, M. & Filiztekin, A. (2007). Empirical validation and
comparison of models for customer base analysis. *International Journal of Research in
Marketing* 24(3), 201-209.

As BG/NBD (purchase rate ``lambda ~ Gamma(r, alpha)``, dropout probability
``p ~ Beta(a, b)``), but the dropout chance also comes at time 0, so customers who never
buy again can be inactive, and P(alive) of one-time buyers is below 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaln, expit, gammaln

from tribes.models.clv.btyd import BTYDModel
from tribes.models.clv.special import log_hyp2f1


class MBGNBD(BTYDModel):
    """MBG/NBD with parameters ``r, alpha`` (purchase rate) and ``a, b`` (dropout)."""

    name = "mbgnbd"
    param_names = ("r", "alpha", "a", "b")

    def _loglik(self, theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
                ) -> np.ndarray:
        r, alpha, a, b = theta
        # survived all x + 1 dropout chances (alive at T), or dropped at the last one
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        alive = betaln(a, b + x + 1) - (r + x) * np.log(alpha + T)
        gone = betaln(a + 1, b + x) - (r + x) * np.log(alpha + tx)
        return common + np.logaddexp(alive, gone)

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        r, alpha, a, b = self._theta()
        x, tx, t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        log_odds_dead = (np.log(a) - np.log(b + x)
                         + (r + x) * (np.log(alpha + t) - np.log(alpha + tx)))
        return expit(-log_odds_dead)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any
                           ) -> np.ndarray:
        # given alive, p ~ Beta(a, b + x + 1): the BG/NBD expression with b -> b + 1
        r, alpha, a, b = self._theta()
        x, tx, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        t = np.asarray(t, dtype=float)
        z = t / (alpha + big_t + t)
        log_f = log_hyp2f1(r + x, b + x + 1, a + b + x, z)
        rest = -np.expm1((r + x) * np.log((alpha + big_t) / (alpha + big_t + t)) + log_f)
        return (a + b + x) / (a - 1) * rest * self.p_alive(x, tx, big_t)

    def expected_purchases_new(self, t: Any) -> np.ndarray:
        # survives the dropout chance at 0 with probability b / (a + b); then p ~ Beta(a, b+1)
        r, alpha, a, b = self._theta()
        t = np.asarray(t, dtype=float)
        log_f = log_hyp2f1(r, b + 1, a + b, t / (alpha + t))
        return b / (a - 1) * -np.expm1(r * np.log(alpha / (alpha + t)) + log_f)
