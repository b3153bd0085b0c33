"""Maximum-likelihood fitting shared by the CLV models.

Every model writes out its per-customer log-likelihood; :class:`MLEstimator` maximizes
the weighted sum over the logarithms of the (positive) parameters with bounded L-BFGS-B
from a few starting points, then reports standard errors from the numerical Hessian
(delta method back to the parameters) and anything that makes the fit doubtful.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator

from tribes.errors import ModelError
from tribes.models.clv.special import hessian

log = logging.getLogger(__name__)

LOG_BOUND = 12.0  # parameters are searched in [e^-12, e^12]


class MLEstimator(BaseEstimator):
    """Base of the models: fitted attributes end in ``_`` (scikit-learn style).

    Parameters
    ----------
    max_iter
        Iterations of each L-BFGS-B run.
    random_state
        Seeds the extra starting points.
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str] = ""

    def __init__(self, max_iter: int = 1000, random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.random_state = random_state

    # ----------------------------------------------------------------- fitting
    def _fit(self, loglik: Callable[[np.ndarray], np.ndarray], starts: list[np.ndarray],
             weights: np.ndarray) -> None:
        """Maximize ``sum(weights * loglik(theta))``; ``starts`` are log parameters."""
        total = float(weights.sum())

        def nll(phi: np.ndarray) -> float:
            with np.errstate(all="ignore"):
                ll = loglik(np.exp(phi))
            value = -float(np.dot(weights, ll)) / total
            return value if np.isfinite(value) else 1e300

        rng = np.random.default_rng(self.random_state)
        starts = list(starts)
        starts.append(starts[0] + rng.normal(0, 0.5, starts[0].size))
        bounds = [(-LOG_BOUND, LOG_BOUND)] * len(self.param_names)
        best: Any = None
        for s in starts:
            res = minimize(nll, np.clip(s, -LOG_BOUND + 1, LOG_BOUND - 1), method="L-BFGS-B",
                           bounds=bounds,
                           options={"maxiter": self.max_iter, "ftol": 1e-12, "gtol": 1e-8})
            if best is None or res.fun < best.fun:
                best = res
        # a derivative-free polish settles the last digits the numerical gradient blurs
        polish = minimize(nll, best.x, method="Nelder-Mead", bounds=bounds,
                          options={"xatol": 1e-8, "fatol": 1e-12,
                                   "maxiter": 100 * len(self.param_names)})
        if polish.fun <= best.fun:
            best.x, best.fun = polish.x, polish.fun
        if best.fun >= 1e299 or not np.all(np.isfinite(best.x)):
            raise ModelError(
                f"{self.name}: the log-likelihood is not finite anywhere the search went; "
                "check the summary for negative or missing values", code="E_MODEL_FIT")
        theta = np.exp(best.x)
        self.params_ = dict(zip(self.param_names, theta.tolist(), strict=True))
        self.loglik_ = -best.fun * total
        self.n_customers_ = round(total)
        self.converged_ = bool(best.success) or bool(polish.success)
        self.warnings_: list[str] = []
        if not self.converged_:
            self.warnings_.append(f"the optimizer stopped before converging ({best.message})"
                                  "; try another --time-unit or more data")
        at_bound = [n for n, v in zip(self.param_names, best.x, strict=True)
                    if abs(v) > LOG_BOUND - 0.05]
        if at_bound:
            self.warnings_.append(self._bound_note(at_bound, theta))
        self.se_ = self._standard_errors(lambda phi: nll(phi) * total, best.x, theta)

    def _bound_note(self, names: list[str], theta: np.ndarray) -> str:
        """What a parameter at the edge of the search range means (models refine this)."""
        return (f"{', '.join(names)} ran to the edge of the search range: the data cannot "
                "pin it down (usually too few repeat buyers or too short a history); "
                "predictions may still be usable, check the holdout")

    def _standard_errors(self, f: Any, phi: np.ndarray, theta: np.ndarray
                         ) -> dict[str, float | None]:
        try:
            h = hessian(f, phi)
            cov = np.linalg.inv(h)
            var = np.diag(cov)
        except np.linalg.LinAlgError:
            var = np.full(phi.size, np.nan)
        se: dict[str, float | None] = {}
        for name, t, v in zip(self.param_names, theta, var, strict=True):
            se[name] = float(t * np.sqrt(v)) if np.isfinite(v) and v > 0 else None
        if any(v is None for v in se.values()):
            self.warnings_.append("the Hessian is not positive definite at the optimum: "
                                  "some standard errors are unavailable")
        return se

    @classmethod
    def from_params(cls, params: dict[str, float]) -> Any:
        """A fitted model from stored parameters (to score without fitting again)."""
        model = cls()
        model.params_ = {n: float(params[n]) for n in cls.param_names}
        model.se_ = dict.fromkeys(cls.param_names)
        model.loglik_, model.n_customers_ = float("nan"), 0
        model.converged_, model.warnings_ = True, []
        return model

    def _theta(self) -> np.ndarray:
        if not hasattr(self, "params_"):
            raise ModelError(f"{self.name} is not fitted yet", code="E_NOT_FITTED")
        return np.array([self.params_[n] for n in self.param_names])

    def summary(self) -> dict[str, Any]:
        """Parameters, standard errors, log-likelihood and warnings, for JSON."""
        return {"model": self.name, "params": dict(self.params_), "se": dict(self.se_),
                "loglik": self.loglik_, "n_customers": self.n_customers_,
                "converged": self.converged_, "warnings": list(self.warnings_)}


def compress(columns: list[np.ndarray], weights: np.ndarray | None
             ) -> tuple[list[np.ndarray], np.ndarray]:
    """Identical rows merged into one with their summed weight (the likelihood is a sum
    over customers, so this changes nothing but speed)."""
    stacked = np.column_stack(columns)
    w = np.ones(len(stacked)) if weights is None else np.asarray(weights, dtype=float)
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=w, minlength=len(uniq))
    return [uniq[:, i] for i in range(uniq.shape[1])], summed


def check_rfm(frequency: Any, recency: Any, T: Any, model: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a frequency/recency/T summary and return it as float arrays."""
    x, tx, t = (np.asarray(v, dtype=float).ravel() for v in (frequency, recency, T))
    if not (len(x) == len(tx) == len(t)):
        raise ModelError("frequency, recency and T must have the same length",
                         code="E_MODEL_INPUT")
    if len(x) < 2:
        raise ModelError(f"{model} needs at least 2 customers with purchases; found {len(x)}",
                         code="E_MODEL_DATA")
    if not (np.isfinite(x).all() and np.isfinite(tx).all() and np.isfinite(t).all()):
        raise ModelError("the summary has missing or infinite values", code="E_MODEL_INPUT")
    if (x < 0).any() or (tx < 0).any() or (t < 0).any():
        raise ModelError("frequency, recency and T must be non-negative", code="E_MODEL_INPUT")
    if (tx > t + 1e-9).any():
        raise ModelError("recency is larger than T for some customers", code="E_MODEL_INPUT")
    if ((x == 0) & (tx > 0)).any():
        raise ModelError("customers without repeat purchases must have recency 0",
                         code="E_MODEL_INPUT")
    if not (x > 0).any():
        raise ModelError(
            f"no customer has a repeat purchase in the calibration period, so {model} has "
            "nothing to learn purchase rates from; use a later --calibration-end or more data",
            code="E_MODEL_DATA")
    if (t <= 0).all():
        raise ModelError("every customer made the first purchase at the calibration end; "
                         "use a later --calibration-end", code="E_MODEL_DATA")
    return x, tx, t
