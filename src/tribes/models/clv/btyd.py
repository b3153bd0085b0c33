"""What the buy-till-you-die models share: fitting on a frequency/recency/T summary and
the predictions every model answers.

Notation (Fader, Hardie & Lee 2005): ``x`` repeat transactions, the last at ``t_x``, in
an observation period ``(0, T]`` that starts at the first purchase; times in one unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tribes.models.clv.base import MLEstimator, check_rfm, compress


class BTYDModel(MLEstimator):
    """A purchase-count model with customer dropout (BG/NBD, MBG/NBD, Pareto/NBD)."""

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> BTYDModel:
        """Maximum-likelihood fit on one row per customer.

        Parameters
        ----------
        frequency, recency, T
            Repeat transactions ``x``, time of the last one ``t_x`` and observation
            length ``T`` (same unit), as from :func:`tribes.models.clv.summary.rfm_summary`.
        weights
            Optional customer counts per row (rows of identical customers merged).

        Returns
        -------
        self
        """
        x, tx, t = check_rfm(frequency, recency, T, self.name)
        (x, tx, t), w = compress([x, tx, t], weights)
        self._fit(lambda theta: self._loglik(theta, x, tx, t), self._starts(x, tx, t), w)
        return self

    def _loglik(self, theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
                ) -> np.ndarray:
        """Per-customer log-likelihood at parameters ``theta``."""
        raise NotImplementedError

    def _starts(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> list[np.ndarray]:
        # rate: repeat purchases per unit of time among the observed; the gamma shape 1
        rate = max(float(np.sum(x) / max(np.sum(T), 1e-9)), 1e-4)
        start = np.zeros(len(self.param_names))
        start[1] = np.log(1.0 / rate)  # alpha ~ 1 / rate
        return [start, np.zeros(len(self.param_names))]

    def _bound_note(self, names: list[str], theta: np.ndarray) -> str:
        params = dict(zip(self.param_names, theta, strict=True))
        if {"a", "b"} <= set(names):
            return (f"a and b ran to the edge of the search range together: the dropout "
                    f"chance looks the same for every customer (a / (a + b) = "
                    f"{params['a'] / (params['a'] + params['b']):.3f}); a valid limit of "
                    "the model, so predictions stay usable")
        if {"r", "alpha"} <= set(names):
            return (f"r and alpha ran to the edge together: every customer buys at about "
                    f"the same rate (r / alpha = {params['r'] / params['alpha']:.3g} per "
                    "time unit); a valid limit of the model")
        if {"s", "beta"} <= set(names):
            return (f"s and beta ran to the edge together: lifetimes look the same for every "
                    f"customer (dropout rate s / beta = {params['s'] / params['beta']:.3g}); "
                    "a valid limit of the model")
        return super()._bound_note(names, theta)

    def loglik(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Per-customer log-likelihood at the fitted parameters."""
        x, tx, t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        return self._loglik(self._theta(), x, tx, t)

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still active at the end of ``T``."""
        raise NotImplementedError

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any
                           ) -> np.ndarray:
        """Expected transactions in the next ``t`` units, given each customer's history."""
        raise NotImplementedError

    def expected_purchases_new(self, t: Any) -> np.ndarray:
        """Expected repeat transactions in the first ``t`` units after a first purchase
        (a customer drawn from the population, no history yet)."""
        raise NotImplementedError
