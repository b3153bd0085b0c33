"""Log-space special functions and numerical derivatives shared by the CLV models.

The likelihoods of the buy-till-you-die models multiply gamma, beta and Gauss
hypergeometric functions whose values over- or underflow for frequent buyers long
observed; everything here works with their logarithms.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

_SERIES_TERMS = 400_000  # terms ~ 40 / (1 - z): enough up to z = 0.9999


def log_hyp2f1(a: np.ndarray, b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``log 2F1(a, b; c; z)`` for ``0 <= z < 1`` and positive ``a``, ``b``, ``c``.

    SciPy's ``hyp2f1`` serves where its value is finite and positive; elsewhere (huge
    values or parameters, lost precision) the power series is summed in log space. All
    its terms are positive for positive parameters, so the log-sum-exp has no
    cancellation.
    """
    a, b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, c, z)))
    with np.errstate(all="ignore"):
        value = special.hyp2f1(a, b, c, z)
        out = np.log(value)
    bad = ~np.isfinite(out) | (value <= 0)
    if bad.any():
        out = out.copy()
        out[bad] = _log_series(a[bad], b[bad], c[bad], z[bad])
    return out


def _log_series(a: np.ndarray, b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The hypergeometric series summed term by term in log space, all values at once;
    a value is done when the geometric bound of its remaining tail is below 1e-17 of
    its sum."""
    out = np.full(a.shape, np.nan)
    active = np.flatnonzero((a > 0) & (b > 0) & (c > 0) & (z >= 0) & (z < 1))
    out[z == 0] = 0.0
    active = active[z[active] > 0]
    log_sum = np.zeros(active.size)
    log_term = np.zeros(active.size)
    log_z = np.log(z[active])
    for k in range(_SERIES_TERMS):
        if not active.size:
            break
        lr = (np.log(a[active] + k) + np.log(b[active] + k) - np.log(c[active] + k)
              - np.log1p(k) + log_z)
        log_term = log_term + lr
        log_sum = np.logaddexp(log_sum, log_term)
        with np.errstate(divide="ignore"):
            tail = log_term + lr - np.log(-np.expm1(np.minimum(lr, -1e-12)))
        done = (lr < 0) & (tail < log_sum - 39)
        if done.any():
            out[active[done]] = log_sum[done]
            keep = ~done
            active, log_sum, log_term, log_z = (active[keep], log_sum[keep],
                                                log_term[keep], log_z[keep])
    out[active] = log_sum  # not converged within the budget: the partial sum (a lower bound)
    return out


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)


def log_quad_exp(log_f: Callable[[np.ndarray, np.ndarray], np.ndarray], lo: np.ndarray,
                 hi: np.ndarray, offset: np.ndarray, rtol: float = 1e-11,
                 max_panels: int = 4096) -> np.ndarray:
    """``log`` of the integral of ``exp(log_f(tau, rows))`` over ``[lo, hi]``, row by row.

    Composite 16-point Gauss-Legendre in ``w = log(tau + offset)``, where power-law
    integrands vary slowly; the number of panels doubles until the result of each row
    changes by less than ``rtol`` (relative). ``log_f`` gets the node times, shape
    (rows, nodes), and the indices of the rows they belong to.
    """
    lo, hi, offset = (np.asarray(v, dtype=float) for v in (lo, hi, offset))
    out = np.full(lo.shape, -np.inf)
    rows = np.flatnonzero(hi > lo)
    panels, prev = 2, None
    while rows.size and panels <= max_panels:
        w0, w1 = np.log(lo[rows] + offset[rows]), np.log(hi[rows] + offset[rows])
        width = (w1 - w0) / panels
        # panel p, node j: w = w0 + width * (p + (node + 1) / 2)
        pos = (np.arange(panels)[:, None] + (_GL_NODES[None, :] + 1) / 2).ravel()
        w = w0[:, None] + width[:, None] * pos[None, :]
        tau = np.exp(w) - offset[rows][:, None]
        logw = np.log(np.tile(_GL_WEIGHTS, panels) / 2)[None, :]
        vals = log_f(tau, rows) + w + logw
        est = special.logsumexp(vals, axis=1) + np.log(width)
        if prev is not None:
            done = np.abs(est - prev) < rtol * np.maximum(1.0, np.abs(est))
            out[rows[done]] = est[done]
            rows, est = rows[~done], est[~done]
        prev = est
        panels *= 2
    if rows.size:
        out[rows] = prev
    return out


def log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and for very negative x."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(x > -0.693, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def expm1_over(c: np.ndarray | float, lg: np.ndarray) -> np.ndarray:
    """``(exp(c * lg) - 1) / c``, with its limit ``lg`` as ``c`` goes to 0."""
    c = np.asarray(c, dtype=float)
    lg = np.asarray(lg, dtype=float)
    small = np.abs(c) < 1e-8
    safe = np.where(small, 1.0, c)
    return np.where(small, lg * (1 + c * lg / 2), np.expm1(safe * lg) / safe)


def hessian(f: Callable[[np.ndarray], float], x: np.ndarray, step: float = 1e-4
            ) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x`` (steps relative to ``max(|x|, 1)``)."""
    x = np.asarray(x, dtype=float)
    h = step * np.maximum(np.abs(x), 1.0)
    with np.errstate(all="ignore"):
        return _hessian(f, x, h)


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = x.size
    f0 = f(x)
    out = np.empty((n, n))
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = h[i]
        out[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(n)
            ej[j] = h[j]
            v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej))
            out[i, j] = out[j, i] = v / (4 * h[i] * h[j])
    return out
