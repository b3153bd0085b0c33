"""Pareto/NBD: Poisson purchasing with an exponential lifetime, both gamma-mixed.

Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987). Counting Your Customers: Who
Are They and What Will They Do Next? *Management Science* 33(1), 1-24. The likelihood
and conditional expectations follow Fader, P. S. & Hardie, B. G. S. (2005), "A Note on
Deriving the Pareto/NBD Model and Related Expressions".

While active a customer buys at rate ``lambda ~ Gamma(r, alpha)``; their lifetime is
exponential with rate ``mu ~ Gamma(s, beta)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special
from scipy.special import expit, gammaln

from tribes.models.clv.btyd import BTYDModel
from tribes.models.clv.special import expm1_over, log1mexp, log_quad_exp


class ParetoNBD(BTYDModel):
    """Pareto/NBD with parameters ``r, alpha`` (purchase rate) and ``s, beta`` (lifetime)."""

    name = "pareto_nbd"
    param_names = ("r", "alpha", "s", "beta")

    def _starts(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> list[np.ndarray]:
        starts = super()._starts(x, tx, T)
        # the lifetime scale beta on the order of the observation length
        for s in starts:
            s[3] = np.log(max(float(np.median(T)), 1e-3))
        return starts

    @staticmethod
    def _log_a0(theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
                ) -> np.ndarray:
        """log A0 of the note's eq. (19)-(20): the probability of dying between t_x and T,
        without the factors shared with the alive term.

        Where SciPy's hypergeometric function fails (long-lived, nearly homogeneous
        customers: huge r + s + x with an argument near 1) the same quantity comes from
        its integral, ``A0 = (r+s+x) * int_tx^T (alpha+t)^-(r+x) (beta+t)^-(s+1) dt``.
        """
        r, alpha, s, beta = theta
        x, tx, T = np.broadcast_arrays(x, tx, T)
        rsx = r + s + x
        lo, hi = min(alpha, beta), max(alpha, beta)
        # near z = 1 SciPy is slow and may fail; the integral is quick there
        z_max = (hi - lo) / (hi + tx)
        closed = (z_max < 0.95) & (tx < T)
        out = np.full(x.shape, -np.inf)  # T = t_x: no time to die in between
        if closed.any():
            out[closed] = ParetoNBD._log_a0_closed(theta, rsx[closed], (r + x)[closed],
                                                   tx[closed], T[closed])
        bad = (tx < T) & ~(closed & np.isfinite(out))
        if bad.any():
            rx = (r + x)[bad]

            def integrand(t: np.ndarray, rows: np.ndarray) -> np.ndarray:
                return -rx[rows][:, None] * np.log(alpha + t) - (s + 1) * np.log(beta + t)

            out[bad] = np.log(rsx[bad]) + log_quad_exp(integrand, tx[bad], T[bad],
                                                       np.full(int(bad.sum()), lo))
        return out

    @staticmethod
    def _log_a0_closed(theta: np.ndarray, rsx: np.ndarray, rx: np.ndarray, tx: np.ndarray,
                       T: np.ndarray) -> np.ndarray:
        _, alpha, s, beta = theta
        if alpha >= beta:
            # 2F1(r+s+x, s+1; r+s+x+1; (alpha-beta)/(alpha+t)) / (alpha+t)^(r+s+x)
            def log_f(t: np.ndarray) -> np.ndarray:
                z = (alpha - beta) / (alpha + t)
                return np.log(special.hyp2f1(rsx, s + 1, rsx + 1, z)) - rsx * np.log(alpha + t)
        else:
            def log_f(t: np.ndarray) -> np.ndarray:
                z = (beta - alpha) / (beta + t)
                return np.log(special.hyp2f1(rsx, rx, rsx + 1, z)) - rsx * np.log(beta + t)
        with np.errstate(all="ignore"):
            at_tx, at_t = log_f(tx), log_f(T)
            out = at_tx + log1mexp(np.minimum(at_t - at_tx, 0.0))
        # a failed or inconsistent value is left to the integral
        return np.where(np.isfinite(at_tx) & np.isfinite(at_t) & (at_t <= at_tx + 1e-12), out,
                        np.nan)

    def _parts(self, theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        r, alpha, s, beta = theta
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        dead = np.log(s) - np.log(r + s + x) + self._log_a0(theta, x, tx, T)
        return alive, dead

    def _loglik(self, theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
                ) -> np.ndarray:
        r, alpha, s, beta = theta
        alive, dead = self._parts(theta, x, tx, T)
        return (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
                + np.logaddexp(alive, dead))

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        x, tx, t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        alive, dead = self._parts(self._theta(), x, tx, t)
        return expit(alive - dead)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any
                           ) -> np.ndarray:
        # note eq. (41): P(alive) x E[transactions | alive, posterior rate and lifetime]
        r, alpha, s, beta = self._theta()
        x, tx, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        t = np.asarray(t, dtype=float)
        horizon = -expm1_over(s - 1, np.log((beta + big_t) / (beta + big_t + t)))
        return ((r + x) / (alpha + big_t) * (beta + big_t) * horizon
                * self.p_alive(x, tx, big_t))

    def expected_purchases_new(self, t: Any) -> np.ndarray:
        # note eq. (17)
        r, alpha, s, beta = self._theta()
        t = np.asarray(t, dtype=float)
        return r * beta / alpha * -expm1_over(s - 1, np.log(beta / (beta + t)))
