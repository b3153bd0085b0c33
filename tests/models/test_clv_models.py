"""The CLV models against independent computations: special functions against mpmath,
likelihoods against numerical integration, and fits against simulated customers whose
true parameters are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import gammaln

from tribes.errors import ModelError
from tribes.models.clv.bgnbd import BGNBD
from tribes.models.clv.gamma_gamma import GammaGamma, independence_check
from tribes.models.clv.mbgnbd import MBGNBD
from tribes.models.clv.pareto_nbd import ParetoNBD
from tribes.models.clv.special import hessian, log_hyp2f1, log_quad_exp


def test_log_hyp2f1_matches_mpmath() -> None:
    mpmath = pytest.importorskip("mpmath")
    cases = [(0.5, 2.4, 2.9, 0.3), (5.0, 1.6, 6.0, 0.9), (50, 1.6, 51, 0.999),
             (2330, 11, 2331, 0.9998), (591, 8.2, 592, 0.99925), (12.0, 30.0, 40.0, 0.7),
             (0.24, 2.4, 2.2, 0.99)]
    for a, b, c, z in cases:
        got = float(log_hyp2f1(np.array([a]), b, c, z)[0])
        want = float(mpmath.log(mpmath.hyp2f1(a, b, c, z)))
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (a, b, c, z)


def _gamma_part(r: float, alpha: float, x: float, t: float) -> float:
    """E[lambda^x exp(-lambda t)] for lambda ~ Gamma(r, alpha)."""
    return math.exp(gammaln(r + x) - gammaln(r) + r * math.log(alpha)
                    - (r + x) * math.log(alpha + t))


@pytest.mark.parametrize("model", [BGNBD, MBGNBD])
def test_beta_geometric_likelihoods_match_integration_over_p(model: type) -> None:
    r, alpha, a, b = 0.7, 3.0, 1.3, 2.2
    m = model.from_params({"r": r, "alpha": alpha, "a": a, "b": b})
    for x, tx, big_t in [(0, 0.0, 10.0), (1, 2.0, 10.0), (4, 7.5, 12.0), (9, 30.0, 31.0)]:
        g_t, g_tx = _gamma_part(r, alpha, x, big_t), _gamma_part(r, alpha, x, tx)

        def integrand(p: float, x: int = x, g_t: float = g_t, g_tx: float = g_tx) -> float:
            if model is BGNBD:
                gone = p * (1 - p) ** (x - 1) * g_tx if x > 0 else 0.0
                return stats.beta.pdf(p, a, b) * ((1 - p) ** x * g_t + gone)
            return stats.beta.pdf(p, a, b) * ((1 - p) ** (x + 1) * g_t + p * (1 - p) ** x * g_tx)

        want, _ = integrate.quad(integrand, 0, 1, epsabs=0, epsrel=1e-12, limit=200)
        got = m.loglik(np.array([x]), np.array([tx]), np.array([big_t]))[0]
        assert got == pytest.approx(math.log(want), abs=1e-9)


@pytest.mark.parametrize("theta", [(0.55, 10.6, 0.6, 11.7), (3.0, 2.0, 0.5, 40.0),
                                   (0.3, 50.0, 2.0, 0.5), (2330.0, 7000.0, 10.0, 10.0)])
def test_pareto_nbd_likelihood_matches_the_lifetime_integral(theta: tuple) -> None:
    r, alpha, s, beta = theta
    m = ParetoNBD.from_params({"r": r, "alpha": alpha, "s": s, "beta": beta})
    for x, tx, big_t in [(0, 0.0, 10.0), (2, 3.0, 20.0), (15, 19.0, 40.0), (1, 5.0, 5.0)]:
        def dead(tau: float, x: int = x) -> float:
            return (_gamma_part(r, alpha, x, tau) * s * beta ** s / (beta + tau) ** (s + 1))

        alive = _gamma_part(r, alpha, x, big_t) * (beta / (beta + big_t)) ** s
        scale = _gamma_part(r, alpha, x, tx) or 1.0
        d, _ = integrate.quad(lambda t, c=scale: dead(t) / c, tx, big_t, epsabs=0,
                              epsrel=1e-12, limit=200)
        want = math.log(alive + d * scale)
        got = m.loglik(np.array([x]), np.array([tx]), np.array([big_t]))[0]
        assert got == pytest.approx(want, abs=1e-8), (theta, x, tx, big_t)


def test_log_quad_exp_integrates_powers_exactly() -> None:
    # int_lo^hi (1 + t)^-k dt = ((1+lo)^(1-k) - (1+hi)^(1-k)) / (k - 1)
    k = np.array([1.5, 30.0, 400.0])
    lo, hi = np.array([0.0, 2.0, 0.5]), np.array([10.0, 3.0, 100.0])
    got = log_quad_exp(lambda t, rows: -k[rows][:, None] * np.log1p(t), lo, hi, np.ones(3))
    want = np.log(((1 + lo) ** (1 - k) - (1 + hi) ** (1 - k)) / (k - 1))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_hessian_of_a_quadratic() -> None:
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    h = hessian(lambda v: float(v @ a @ v / 2 + v.sum()), np.array([0.3, -1.2]))
    np.testing.assert_allclose(h, a, atol=1e-5)


# --------------------------------------------------------------------------- simulation

def simulate(model: str, theta: dict[str, float], n: int, seed: int,
             horizon: float = 26.0) -> dict[str, np.ndarray]:
    """Customers of a known model: calibration summary, whether each is alive at T, and
    their purchases in the following ``horizon`` (from T) and in (0, horizon] (fresh)."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(10, 60, n)
    lam = rng.gamma(theta["r"], 1 / theta["alpha"], n)
    if model == "pareto_nbd":
        mu = rng.gamma(theta["s"], 1 / theta["beta"], n)
        death = rng.exponential(1 / mu)
    else:
        p = rng.beta(theta["a"], theta["b"], n)
    x, tx, alive, future, fresh = (np.zeros(n) for _ in range(5))
    for i in range(n):
        t, times = 0.0, []
        dead_at = death[i] if model == "pareto_nbd" else np.inf
        if model == "mbgnbd" and rng.random() < p[i]:
            dead_at = 0.0
        end = big_t[i] + horizon
        while True:
            t += rng.exponential(1 / lam[i])
            if t > min(dead_at, end):
                break
            times.append(t)
            if model != "pareto_nbd" and rng.random() < p[i]:
                dead_at = t
                break
        arr = np.array(times)
        cal = arr[arr <= big_t[i]]
        x[i], tx[i] = len(cal), (cal.max() if len(cal) else 0.0)
        alive[i] = dead_at > big_t[i]
        future[i] = ((arr > big_t[i]) & (arr <= end)).sum()
        fresh[i] = (arr <= horizon).sum()
    return {"x": x, "tx": tx, "T": big_t, "alive": alive, "future": future, "fresh": fresh}


CASES = [
    ("bgnbd", BGNBD, {"r": 0.8, "alpha": 4.0, "a": 1.5, "b": 4.0}),
    ("mbgnbd", MBGNBD, {"r": 0.8, "alpha": 4.0, "a": 1.5, "b": 4.0}),
    ("pareto_nbd", ParetoNBD, {"r": 0.8, "alpha": 4.0, "s": 1.5, "beta": 30.0}),
]


@pytest.mark.parametrize(("name", "model", "theta"), CASES, ids=[c[0] for c in CASES])
def test_fits_recover_simulated_customers(name: str, model: type,
                                          theta: dict[str, float]) -> None:
    d = simulate(name, theta, n=6000, seed=42)
    m = model().fit(d["x"], d["tx"], d["T"])
    assert m.converged_
    for k, v in theta.items():
        # within 4 standard errors of the truth: the estimates and the SEs are right
        assert abs(m.params_[k] - v) < 4 * m.se_[k], (k, m.params_[k], v, m.se_[k])
    truth = model.from_params(theta)
    # with the true parameters, predictions match what the simulated customers did (within
    # four standard errors of the sums, whose terms are heavy-tailed)
    future = truth.expected_purchases(26.0, d["x"], d["tx"], d["T"])
    gap = d["future"] - future
    assert abs(gap.sum()) < 4 * np.sqrt((gap ** 2).sum())
    alive = truth.p_alive(d["x"], d["tx"], d["T"])
    assert abs((d["alive"] - alive).sum()) < 4 * np.sqrt((alive * (1 - alive)).sum())
    fresh = float(truth.expected_purchases_new(26.0))
    assert abs(d["fresh"].mean() - fresh) < 4 * d["fresh"].std() / np.sqrt(len(d["fresh"]))
    # P(alive) is a probability and ranks the truly active above the dropped
    assert ((alive >= 0) & (alive <= 1)).all()
    assert alive[d["alive"] == 1].mean() > alive[d["alive"] == 0].mean()


def test_gamma_gamma_recovers_simulated_spend() -> None:
    rng = np.random.default_rng(7)
    p, q, g = 6.0, 3.8, 15.0
    n = 4000
    x = rng.integers(1, 12, n)
    nu = rng.gamma(q, 1 / g, n)
    spend = np.array([rng.gamma(p, 1 / nu[i], x[i]).mean() for i in range(n)])
    m = GammaGamma().fit(x, spend)
    for k, v in {"p": p, "q": q, "gamma": g}.items():
        assert abs(m.params_[k] - v) < 4 * m.se_[k], (k, m.params_[k], v)
    true_mean = p / nu
    est = m.expected_value(x, spend)
    # shrinking towards the population mean beats each customer's own mean
    assert np.mean((est - true_mean) ** 2) < np.mean((spend - true_mean) ** 2)
    assert m.mean_value() == pytest.approx(p * g / (q - 1), rel=0.1)
    assert independence_check(x, spend)["ok"]


def test_clear_errors_on_unusable_summaries() -> None:
    with pytest.raises(ModelError) as e:
        BGNBD().fit([0, 0, 0], [0, 0, 0], [5, 6, 7])
    assert e.value.code == "E_MODEL_DATA"
    with pytest.raises(ModelError) as e:
        ParetoNBD().fit([3], [2.0], [5.0])
    assert e.value.code == "E_MODEL_DATA"
    with pytest.raises(ModelError) as e:
        BGNBD().fit([1, 2], [6.0, 1.0], [5.0, 5.0])
    assert e.value.code == "E_MODEL_INPUT"
    with pytest.raises(ModelError) as e:
        BGNBD().fit([1, float("nan")], [1.0, 1.0], [5.0, 5.0])
    assert e.value.code == "E_MODEL_INPUT"
    with pytest.raises(ModelError) as e:
        GammaGamma().fit([1, 2, 3], [10.0, 10.0, 10.0])
    assert e.value.code == "E_MODEL_DATA"
    with pytest.raises(ModelError) as e:
        GammaGamma(strict=True).fit([1, 2], [10.0, -3.0])
    assert e.value.code == "E_MODEL_INPUT"
    # left out by default, which leaves one repeat buyer: too few
    with pytest.raises(ModelError) as e:
        GammaGamma().fit([1, 2], [10.0, -3.0])
    assert e.value.code == "E_MODEL_DATA"


def test_gamma_gamma_leaves_out_non_positive_averages() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(1, 8, 300).astype(float)
    m = rng.gamma(6.0, 4.0, 300)
    clean = GammaGamma().fit(x, m)
    assert clean.excluded_ == {"non_positive_average": 0}
    # free and refunded repeat orders, and one-time buyers (no average at all)
    xs, ms = np.r_[x, 2, 5, 1, 0], np.r_[m, 0.0, -12.5, 0.0, np.nan]
    fit = GammaGamma().fit(xs, ms)
    assert fit.excluded_ == {"non_positive_average": 3}
    assert fit.n_customers_ == 300 and fit.params_ == clean.params_
    value = fit.expected_value(xs, ms)
    assert (value[-4:-1] == 0).all() and value[-1] == pytest.approx(fit.mean_value())
    assert (value[:300] > 0).all()
    assert independence_check(xs, ms)["n"] == 300
    with pytest.raises(ModelError) as e:
        GammaGamma(strict=True).fit(xs, ms)
    assert e.value.code == "E_MODEL_INPUT" and "3 repeat buyers" in e.value.message


@pytest.mark.parametrize("model", [BGNBD, MBGNBD, ParetoNBD])
def test_identical_and_extreme_customers_give_finite_results(model: type) -> None:
    same = model().fit(np.full(50, 2), np.full(50, 5.0), np.full(50, 10.0))
    assert all(math.isfinite(v) for v in same.params_.values())
    assert same.warnings_  # the degenerate data is reported, not silently fitted
    x = np.array([0, 1, 500, 3])
    tx = np.array([0.0, 1.0, 999.0, 2.0])
    big_t = np.array([1000.0, 1000.0, 1000.0, 2.0])
    m = model().fit(np.r_[x, 2, 4], np.r_[tx, 3.0, 8.0], np.r_[big_t, 10.0, 12.0])
    assert np.isfinite(m.p_alive(x, tx, big_t)).all()
    assert np.isfinite(m.expected_purchases(52.0, x, tx, big_t)).all()
