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


def _workspace(path: Path, ws: Path) -> Path:
    from tribes.cli import main

    assert main(["-q", "init", str(ws)]) == 0
    # whitespace-separated, no header: master id, sample id, date, CDs, dollars
    assert main(["-q", "--workspace", str(ws), "ingest", str(path), "--no-header",
                 "--event-type", "purchase", "--source", "cdnow", "--ts-format", "%Y%m%d",
                 "--map", "customer_id=column0,ts=column2,quantity=column3,amount=column4"]
                ) == 0
    return ws


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _workspace(shared_data("cdnow/CDNOW_sample.txt"),
                      tmp_path_factory.mktemp("cdnow") / "ws")


# a repeat buyer whose repeat orders were all free (as in the full CDNOW master file): a
# $0 average repeat value, in the calibration period and over the whole history
FREE_RIDER = [" 99999 2358 19970115  1   15.00", " 99999 2358 19970301  1    0.00",
              " 99999 2358 19970301  1    0.00", " 99999 2358 19970420  2    0.00",
              " 99999 2358 19980105  1    0.00"]


@pytest.fixture(scope="module")
def cdnow_free(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cdnow_free")
    data = shared_data("cdnow/CDNOW_sample.txt").read_bytes()
    planted = root / "CDNOW_free.txt"
    planted.write_bytes(data.rstrip(b"\r\n") + b"\r\n"
                        + "".join(f"{line}\r\n" for line in FREE_RIDER).encode())
    return _workspace(planted, root / "ws")


def _spend_sig(fit: dict[str, float]) -> dict[str, float]:
    return {k: sig(v) for k, v in fit.items()}


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
    assert _spend_sig(fit["spend_params"]) == {"p": 6.25, "q": 3.74, "gamma": 15.4}
    assert fit["spend_customers"] == 946 and not fit["strict_spend"]
    assert fit["spend_excluded"] == {"non_positive_average": 0}
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
    assert res["lowest_mae"] == min(res["models"], key=lambda m: m["holdout"]["mae"])["model"]
    assert res["best"] == (None if res["tied"] else res["lowest_mae"])
    assert all(m["holdout"]["actual"] == 1882 for m in res["models"])
    show = cli("--workspace", cdnow, "clv", "show", "--json")
    assert show.code == 0 and list(show.json()["params"]) == ["r", "alpha", "a", "b"]


def test_zero_value_repeat_buyer_is_left_out_of_the_spend_model(cli, cdnow_free: Path,
                                                               tmp_path: Path) -> None:
    import pandas as pd

    r = cli("--workspace", cdnow_free, "clv", "fit", "--calibration-end", "1997-09-30",
            "--period", "day", "--time-unit", "week", "--json")
    assert r.code == 0, r.err
    fit = r.json()
    assert fit["n_customers"] == 2358 and fit["repeat_buyers"] == 947
    assert fit["spend_model"] == "gamma_gamma" and fit["spend_customers"] == 946
    assert fit["spend_excluded"] == {"non_positive_average": 1}
    # left out, not fitted on: the published estimates, unchanged
    assert _spend_sig(fit["spend_params"]) == {"p": 6.25, "q": 3.74, "gamma": 15.4}
    assert {k: round(v, 2) for k, v in fit["spend_params"].items()} == {
        "p": 6.25, "q": 3.74, "gamma": 15.44}
    assert not any("spend model" in w for w in fit["warnings"])
    text = cli("--workspace", cdnow_free, "clv", "fit", "--calibration-end", "1997-09-30")
    assert text.code == 0 and "1 with a zero or negative average" in text.out
    show = cli("--workspace", cdnow_free, "clv", "show", "--json")
    assert show.code == 0 and show.json()["spend_excluded"] == {"non_positive_average": 1}

    s = cli("--workspace", cdnow_free, "clv", "score", "--horizon", "39w", "--json")
    assert s.code == 0, s.err
    assert s.json()["customers"] == 2358
    assert s.json()["spend_excluded"] == {"non_positive_average": 1}
    out = tmp_path / "clv.parquet"
    assert cli("--workspace", cdnow_free, "export", "clv", "--out", out).code == 0
    df = pd.read_parquet(out)
    free = df[(df.frequency > 0) & (df.monetary <= 0)]
    # the free rider: 3 repeat transactions worth $0, still scored for P(alive) and
    # purchases, valued at 0
    assert len(free) == 1 and free.frequency.iloc[0] == 3
    assert 0 < free.p_alive.iloc[0] <= 1 and free.expected_purchases.iloc[0] > 0
    assert free.expected_value.iloc[0] == 0 and free.clv.iloc[0] == 0
    rest = df.drop(free.index)
    assert (rest.expected_value > 0).all() and (df.clv >= 0).all()

    html = tmp_path / "report.html"
    rep = cli("--workspace", cdnow_free, "report", "--out", html)
    assert rep.code == 0, rep.err
    assert "1 repeat buyers with a zero or negative average transaction value" in (
        html.read_text(encoding="utf-8"))


def test_strict_spend_keeps_refusing(cli, cdnow_free: Path, tmp_path: Path) -> None:
    import pandas as pd

    from tribes.config import CONFIG_FILE

    r = cli("--workspace", cdnow_free, "clv", "fit", "--calibration-end", "1997-09-30",
            "--strict-spend", "--json")
    assert r.code == 0, r.err
    fit = r.json()
    assert fit["strict_spend"] and fit["spend_model"] is None and fit["spend_params"] is None
    assert fit["spend_excluded"] == {"non_positive_average": 0}
    assert any(w.startswith("no spend model: 1 repeat buyers have a zero or negative")
               for w in fit["warnings"])
    # the purchase model is fitted all the same, and scoring falls back to own means
    assert set(fit["params"]) == {"r", "alpha", "a", "b"} and fit["n_customers"] == 2358
    s = cli("--workspace", cdnow_free, "clv", "score", "--horizon", "39w", "--json")
    assert s.code == 0, s.err
    out = tmp_path / "clv.parquet"
    assert cli("--workspace", cdnow_free, "export", "clv", "--out", out).code == 0
    df = pd.read_parquet(out)
    assert (df.clv >= 0).all()
    assert (df.loc[(df.frequency > 0) & (df.monetary <= 0), "clv"] == 0).all()

    # the same from the configuration; the command line wins over it
    toml = cdnow_free / CONFIG_FILE
    before = toml.read_text(encoding="utf-8")
    assert "strict_spend = false" in before
    toml.write_text(before.replace("strict_spend = false", "strict_spend = true"),
                    encoding="utf-8")
    try:
        r = cli("--workspace", cdnow_free, "clv", "fit", "--calibration-end", "1997-09-30",
                "--json")
        assert r.code == 0 and r.json()["spend_model"] is None and r.json()["strict_spend"]
        r = cli("--workspace", cdnow_free, "clv", "fit", "--calibration-end", "1997-09-30",
                "--no-strict-spend", "--json")
        assert r.code == 0 and r.json()["spend_model"] == "gamma_gamma"
        assert r.json()["spend_excluded"] == {"non_positive_average": 1}
    finally:
        toml.write_text(before, encoding="utf-8")


def test_churn_on_purchase_only_data_leaves_empty_features_out(cli, cdnow: Path) -> None:
    """A plain transaction file has no carts, sessions or categories: such features carry
    nothing and are left out (they crashed the classifier); P(alive) ranking churners
    worse than chance is said."""
    import pandas as pd

    r = cli("--workspace", cdnow, "clv", "churn", "--no-store", "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["scored"] is None
    left = res["gradient_boosting"]["left_out"]
    assert left["cart_abandonment_rate"] == "null for every customer"
    assert not set(left) & set(res["gradient_boosting"]["features"])
    assert {"frequency", "monetary", "recency_days"} <= set(
        res["gradient_boosting"]["features"])
    # the test labels, counted from the events independently: no purchase in the last
    # 60 days of the data among the customers seen before its start
    events = pd.read_csv(shared_data("cdnow/CDNOW_sample.txt"), sep=r"\s+", header=None,
                         names=["id", "s", "date", "n", "usd"], dtype={"date": str})
    ts = pd.to_datetime(events.date, format="%Y%m%d", utc=True)
    cut = pd.Timestamp(res["test_as_of"])
    seen = set(events.id[ts <= cut])
    active = set(events.id[(ts > cut) & (ts <= cut + pd.Timedelta(days=60))])
    assert res["n_test"] == len(seen)
    rate = res["gradient_boosting"]["all"]["churn_rate"]
    assert rate == pytest.approx(len(seen - active) / len(seen))
    auc = res["p_alive"]["purchasers"]["auc"]
    if auc < 0.5:
        assert any("worse than chance" in w for w in res["p_alive"]["warnings"])
    assert "Left out of gradient boosting" in cli("--workspace", cdnow, "clv", "churn",
                                                  "--no-store").out


def test_a_test_set_of_one_class_says_so() -> None:
    import numpy as np

    from tribes.models.clv.churn import _scores

    s = _scores(np.ones(12, dtype=int), np.linspace(0, 1, 12))
    assert s["auc"] is None and s["churn_rate"] == 1.0
    assert s["note"] == "100% churned; AUC undefined because there is only one class"


def test_a_calibration_end_after_the_data_is_refused(cli, cdnow: Path) -> None:
    r = cli("--workspace", cdnow, "clv", "fit", "--calibration-end", "1998-12-31", "--json")
    assert r.code != 0 and r.json()["error"] == "E_CALIBRATION"
    assert "1998-06-30" in r.err  # the last purchase of the sample


def test_models_whose_errors_differ_by_chance_tie() -> None:
    import numpy as np

    from tribes.models.clv.clv_stage import _same_error

    alternating = np.tile([0.0, 1.0], 50)
    assert _same_error(alternating, 1 - alternating)  # the same mean error: a tie
    assert not _same_error(np.zeros(100), np.ones(100))  # always one better
    rng = np.random.default_rng(0)
    noisy = rng.exponential(1.0, 200)
    assert _same_error(noisy, noisy + rng.normal(0.001, 1.0, 200))  # a hair apart


def test_persona_churn_risk_comes_from_the_best_validated_model(cli, cdnow: Path) -> None:
    """On CDNOW, BG/NBD's P(alive) is 1 for every one-time buyer, so segments of lapsed
    one-time buyers would show less churn risk than recent repeat buyers. Personas must
    not show that: the figure is withheld until ``clv churn`` scores churn with the model
    that ranks the holdout best, named, and it then agrees with each segment's recency."""
    for args in (("features",), ("segment", "--method", "kmeans", "--k", "4"),
                 ("clv", "fit", "--model", "bgnbd"), ("clv", "score")):
        r = cli("--workspace", cdnow, *args, "--json")
        assert r.code == 0, (args, r.err)

    def check(personas: list[dict]) -> list[dict]:
        # independent of the implementation: for every pair of segments, the one last
        # seen clearly longer ago never shows the lower share at churn risk
        shown = [p for p in personas if p["churn"] and p["churn"]["share"] is not None]
        for a in shown:
            for b in shown:
                ra = a["features"]["recency_days"]["median"]
                rb = b["features"]["recency_days"]["median"]
                if ra >= 2 * rb and ra - rb >= 7:
                    assert a["churn"]["share"] >= b["churn"]["share"], (a["name"], b["name"])
        return shown

    before = cli("--workspace", cdnow, "personas", "--json").json()["personas"]
    assert check(before) == []  # BG/NBD contradicts recency here: withheld, and why
    assert all("contradicts the segments' recency" in p["churn"]["withheld"]
               and "tribes clv churn" in p["churn"]["withheld"] for p in before)
    churn = cli("--workspace", cdnow, "clv", "churn", "--json").json()
    aucs = {"gradient_boosting": churn["gradient_boosting"]["purchasers"]["auc"],
            **{f"p_alive:{m}": v["auc"] for m, v in churn["p_alive_models"].items()}}
    best = max(v for v in aucs.values() if v is not None)
    assert aucs[churn["better_on_purchasers"]] >= best - 0.005
    assert churn["scored"]["stored"]
    after = cli("--workspace", cdnow, "personas", "--json").json()["personas"]
    assert len(check(after)) == len(after)
    assert {p["churn"]["model"] for p in after} == {churn["scored"]["label"]}
    assert "ROC-AUC" in churn["scored"]["label"]
    text = cli("--workspace", cdnow, "personas", "show",
               str(after[0]["segment_id"])).out
    assert "at churn risk" in " ".join(text.split())


def test_a_churn_share_that_contradicts_recency_is_found() -> None:
    from tribes.models.personas import recency_contradiction

    def shares(*pairs: tuple[float, int]) -> dict[int, dict]:
        return {i: {"share": s, "scored": n} for i, (s, n) in enumerate(pairs)}

    # segment 0 was last seen 300 days ago yet shows 0% at risk; segment 1, 10 days ago
    churn = shares((0.0, 100), (0.3, 100), (0.9, 100))
    why = recency_contradiction(churn, {0: 300.0, 1: 10.0, 2: 400.0})
    assert why is not None and "segment 0" in why and "segment 1" in why
    assert recency_contradiction(churn, {0: 10.0, 1: 15.0, 2: 400.0}) is None
    # close recencies (not twice as long, or less than a week apart) are not a contradiction
    assert recency_contradiction(churn, {0: 12.0, 1: 10.0, 2: 30.0}) is None
    assert recency_contradiction(churn, {0: 5.0, 1: 2.0, 2: 30.0}) is None
    # nor is a difference that chance explains: 0 of 3 against 2% of 120 (z = 0.25);
    # 11% of 971 against 17% of 581 is not chance (z = 3.4, CDNOW under BG/NBD)
    assert recency_contradiction(shares((0.0, 3), (0.02, 120)), {0: 126.0, 1: 4.0}) is None
    assert recency_contradiction(shares((0.11, 971), (0.17, 581)), {0: 490.0, 1: 95.0})
    # both still within the churn horizon (30 days here): a model may rank them
    # otherwise than recency does (3% of 1,952 seen 17 days ago, 5% of 3,418 seen 6)
    recent = {i: {**c, "horizon_days": 30} for i, c in shares((0.03, 1952),
                                                              (0.05, 3418)).items()}
    assert recency_contradiction(recent, {0: 17.0, 1: 6.0}) is None
    assert recency_contradiction(recent, {0: 45.0, 1: 6.0})
