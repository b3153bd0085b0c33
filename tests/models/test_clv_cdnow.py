"""CDNOW: the published estimates of the BG/NBD, Pareto/NBD and Gamma-Gamma models,
reproduced from the raw transaction log through ``tribes ingest`` and ``tribes clv``.

Fader, Hardie & Lee (2005) "Counting your customers the easy way"; Fader & Hardie (2013)
"The Gamma-Gamma model of monetary value". 2,357 customers, calibration through
1997-09-30, weeks, several records on one day = one transaction.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import shared_data


def sig(v: float, digits: int = 3) -> float:
    return float(f"{v:.{digits}g}")


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tribes.cli import main

    path = shared_data("cdnow/CDNOW_sample.txt")
    ws = tmp_path_factory.mktemp("cdnow") / "ws"
    assert main(["-q", "init", str(ws)]) == 0
    # whitespace-separated, no header: master id, sample id, date, CDs, dollars
    assert main(["-q", "--workspace", str(ws), "ingest", str(path), "--no-header",
                 "--event-type", "purchase", "--source", "cdnow", "--ts-format", "%Y%m%d",
                 "--map", "customer_id=column0,ts=column2,quantity=column3,amount=column4"]
                ) == 0
    return ws


def test_bgnbd_and_gamma_gamma_reproduce_the_papers(cli, cdnow: Path) -> None:
    r = cli("--workspace", cdnow, "clv", "fit", "--calibration-end", "1997-09-30", "--json")
    assert r.code == 0, r.err
    fit = r.json()
    assert fit["model"] == "bgnbd" and fit["n_customers"] == 2357
    assert {k: sig(v) for k, v in fit["params"].items()} == {
        "r": 0.243, "alpha": 4.41, "a": 0.793, "b": 2.43}
    assert round(fit["params"]["alpha"], 3) == 4.414 and round(fit["params"]["b"], 3) == 2.426
    assert round(fit["loglik"], 1) == -9582.4
    assert fit["spend_model"] == "gamma_gamma" and fit["repeat_buyers"] == 946
    assert {k: round(v, 2) for k, v in fit["spend_params"].items()} == {
        "p": 6.25, "q": 3.74, "gamma": 15.44}
    assert fit["independence"]["ok"] and round(fit["independence"]["pearson"], 2) == 0.11
    assert all(v is not None and v > 0 for v in fit["se"].values())
    h = fit["holdout"]
    assert h["holdout_end"].startswith("1998-06-30") and h["length"] == pytest.approx(39.0)
    assert h["actual"] == 1882  # repeat transactions in the 39 holdout weeks
    cum = h["cumulative"]
    # cumulative repeat transactions through week 78: 4,339 actual, BG/NBD ~4% under
    assert cum["actual_at_end"] == 4339
    assert -0.05 < cum["error_pct_at_end"] < -0.03


def test_pareto_nbd_reproduces_the_paper(cli, cdnow: Path) -> None:
    r = cli("--workspace", cdnow, "clv", "fit", "--model", "pareto_nbd", "--calibration-end",
            "1997-09-30", "--json")
    assert r.code == 0, r.err
    fit = r.json()
    assert {k: round(v, 3) for k, v in fit["params"].items()} == {
        "r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    assert round(fit["loglik"], 1) == -9595.0
    cum = fit["holdout"]["cumulative"]
    assert cum["actual_at_end"] == 4339 and -0.03 < cum["error_pct_at_end"] < -0.01


def test_score_validate_and_export(cli, cdnow: Path, tmp_path: Path) -> None:
    import pandas as pd

    assert cli("--workspace", cdnow, "clv", "fit", "--calibration-end", "1997-09-30").code == 0
    r = cli("--workspace", cdnow, "clv", "score", "--horizon", "39w", "--json")
    assert r.code == 0, r.err
    s = r.json()
    assert s["customers"] == 2357 and s["horizon"] == "39w"
    assert 0 < s["churn_risk_share"] < 1
    out = tmp_path / "clv.parquet"
    e = cli("--workspace", cdnow, "export", "clv", "--out", out, "--json")
    assert e.code == 0, e.err
    assert e.json()["rows"] == 2357
    df = pd.read_parquet(out)
    assert df.customer_key.is_unique and len(df) == 2357
    assert df.p_alive.between(0, 1).all() and (df.clv >= 0).all()
    assert (df.churn_risk == (df.p_alive < 0.5)).all()
    # one-time buyers are alive by the BG/NBD's assumption
    assert (df.loc[df.frequency == 0, "p_alive"] == 1).all()
    # discounted CLV over a horizon is below the undiscounted expected spend
    assert (df.clv <= df.expected_purchases * df.expected_value + 1e-9).all()

    v = cli("--workspace", cdnow, "clv", "validate", "--json")
    assert v.code == 0, v.err
    res = v.json()
    assert [m["model"] for m in res["models"]] == ["bgnbd", "pareto_nbd", "mbgnbd"]
    assert res["best"] in ("bgnbd", "pareto_nbd", "mbgnbd")
    assert all(m["holdout"]["actual"] == 1882 for m in res["models"])
    show = cli("--workspace", cdnow, "clv", "show", "--json")
    assert show.code == 0 and list(show.json()["params"]) == ["r", "alpha", "a", "b"]
