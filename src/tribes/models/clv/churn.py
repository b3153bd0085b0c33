"""Churn risk two ways, compared on a time-based holdout.

* **P(alive)** of the purchase model: fitted on purchases up to a cut-off date, churn
  score ``1 - P(alive)``; defined for customers who purchased.
* **Supervised**: gradient boosting on the customer features as of a past date, the
  label being *no event at all in the next N days*. It is trained at ``end - 2N``
  (label from the following N days) and tested at ``end - N`` (label from the last N
  days), so nothing of the test period is seen in training.

Both are scored on the test customers: ROC-AUC (over all test customers for the
supervised model, and over purchasers for both), Brier score and a calibration curve.
P(alive) is scored for every purchase model (BG/NBD, MBG/NBD, Pareto/NBD).

The model that ranks the test purchasers best (highest ROC-AUC; gradient boosting on a
tie, since it also scores customers who never purchased) is then refitted on the newest
data and scores every customer now: the ``churn_scores`` table, with the model's name
and holdout AUC, which personas show as their churn risk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.engine import Engine, md5_hex
from tribes.errors import ModelError
from tribes.features import base_features, scored_features
from tribes.models.clv.clv_stage import MODELS, data_end, fit_models
from tribes.models.clv.summary import SummarySpec, rfm_summary
from tribes.prep import last_prep, prep_params, run_prep
from tribes.privacy import consent_filter
from tribes.settings import RunSettings
from tribes.store import (
    CHURN_SCORES,
    events_fingerprint,
    is_current,
    keyed_consents,
    keyed_events,
    list_rules,
)
from tribes.workspace import RunContext, Workspace

log = logging.getLogger(__name__)

EXCLUDED = {"customer_key", "rfm_label"}
CALIBRATION_BINS = 10
TABLE = "churn_scores"
AT_RISK = 0.5  # a churn probability at or above this flags the customer
TIE = 0.005  # ROC-AUCs closer than this are a tie


def _features(ws: Workspace, engine: Engine, cut: datetime,
              settings: RunSettings) -> ir.Table:
    """Every feature as of ``cut`` of the customers seen up to it (consent applied)."""
    events, ids = engine.table("events"), engine.table("identities")
    base = base_features(events, ids, engine.table("sessions"), as_of=cut, cut=True)
    base = consent_filter(base, "customer_key", keyed_consents(engine),
                          settings.consent_mode)
    return scored_features(base, ws.config.features.engagement_weights)


def _frame(ws: Workspace, engine: Engine, cut: datetime, days: int, sample: int,
           settings: RunSettings) -> pd.DataFrame:
    """Features as of ``cut`` and the label (no event in the following ``days``) of the
    customers seen up to ``cut`` (a deterministic sample when there are more)."""
    events, ids = engine.table("events"), engine.table("identities")
    feats = _features(ws, engine, cut, settings)
    cut_lit = ibis.literal(cut, type="timestamp('UTC')")
    later = ibis.literal(cut + timedelta(days=days), type="timestamp('UTC')")
    nxt = events.filter((events.ts > cut_lit) & (events.ts <= later))
    active = keyed_events(nxt, ids, ["ts"]).select(a_key="customer_key").distinct()
    j = feats.left_join(active, feats.customer_key == active.a_key)
    t: ir.Table = j.mutate(churned=j.a_key.isnull()).drop("a_key")
    t = t.order_by(md5_hex(t.customer_key)).limit(sample)
    return engine.execute(t)


def _matrix(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    cols = columns or [c for c in df.columns if c not in EXCLUDED | {"churned"}]
    return df[cols].astype(float)


def informative(train: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The feature columns that can teach the classifier something, and why each other
    one is left out: null for every training customer (cart abandonment where there are
    no carts) or the same value for all."""
    x = _matrix(train)
    kept, left_out = [], {}
    for c in x.columns:
        values = x[c].dropna()
        if values.empty:
            left_out[c] = "null for every customer"
        elif values.nunique() == 1 and len(values) == len(x):
            left_out[c] = f"the same value ({values.iloc[0]:g}) for every customer"
        else:
            kept.append(c)
    return kept, left_out


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, roc_auc_score

    if len(y) == 0:
        return {"auc": None, "brier": None, "calibration": [], "n": 0,
                "note": "no customers to score"}
    if len(np.unique(y)) < 2:
        return {"auc": None, "brier": None, "calibration": [], "n": len(y),
                "churn_rate": float(y.mean()),
                "note": f"{y.mean():.0%} churned; AUC undefined because there is only one "
                        "class"}
    frac, mean = calibration_curve(y, p, n_bins=CALIBRATION_BINS, strategy="quantile")
    return {"auc": float(roc_auc_score(y, p)), "brier": float(brier_score_loss(y, p)),
            "calibration": [{"predicted": float(m), "observed": float(f)}
                            for m, f in zip(mean, frac, strict=True)],
            "n": len(y), "churn_rate": float(y.mean())}


def compare_churn(ctx: RunContext, *, days: int | None = None,
                  model: str | None = None, store: bool = False,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Supervised churn model against the purchase models' P(alive); see the module doc.
    The run's settings give the session timeout and the consent mode; ``store``
    scores every customer now with the model that validated best."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    say = progress or (lambda step: None)
    ws, engine, settings = ctx.ws, ctx.engine, ctx.settings
    cfg = ws.config.clv
    days = days or cfg.churn_days
    name = model or cfg.model
    prep = last_prep(engine)
    if not is_current(prep, events_fingerprint(engine)) or (prep or {}).get(
            "params") != prep_params(settings, list_rules(engine)):
        # the features at each cut read the stored sessions
        say("prep (events, settings or identity rules changed since the last prep)")
        run_prep(ctx, progress=lambda s: say(f"prep: {s}"))
    end = data_end(engine)
    test_cut = end - timedelta(days=days)
    train_cut = test_cut - timedelta(days=days)
    ev = engine.table("events")
    first = pd.Timestamp(engine.scalar(ev.ts.min())).to_pydatetime()
    if first >= train_cut - timedelta(days=days):
        raise ModelError(
            f"the history ({(end - first).days} days) is too short for a {days}-day churn "
            f"label: it needs at least {3 * days} days (train, test and a history before "
            "them); use --days with a smaller number", code="E_MODEL_DATA")
    sample = ws.config.segment.sample_size
    say(f"features as of {train_cut.date()} (training)")
    train = _frame(ws, engine, train_cut, days, sample, settings)
    say(f"features as of {test_cut.date()} (test)")
    test = _frame(ws, engine, test_cut, days, sample, settings)
    y_train, y_test = train.churned.to_numpy(int), test.churned.to_numpy(int)
    if len(np.unique(y_train)) < 2:
        raise ModelError(f"every training customer has the same label (churned = "
                         f"{bool(y_train[0])}); try another --days", code="E_MODEL_DATA")
    columns, left_out = informative(train)
    if not columns:
        raise ModelError("no feature tells the training customers apart ("
                         + "; ".join(f"{c}: {why}" for c, why in left_out.items()) + ")",
                         code="E_MODEL_DATA")
    say("training gradient boosting")
    gb = HistGradientBoostingClassifier(random_state=ws.config.segment.random_state,
                                        max_iter=200, early_stopping=True)
    gb.fit(_matrix(train, columns), y_train)
    p_gb = gb.predict_proba(_matrix(test, columns))[:, 1]

    spec = SummarySpec(test_cut, None, cfg.period, cfg.time_unit)
    summ = engine.execute(rfm_summary(engine, spec, settings.consent_mode))
    keys = test.customer_key.astype(str)
    buyers = keys.isin(set(summ.customer_key.astype(str))).to_numpy()
    gb_all = _scores(y_test, p_gb)
    gb_buyers = _scores(y_test[buyers], p_gb[buyers])
    per_model: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for m in dict.fromkeys([name, *MODELS]):
        say(f"fitting {m} on purchases up to {test_cut.date()}")
        try:
            purchase, _, warned = fit_models(summ, m, ws.config.segment.random_state)
        except ModelError as exc:
            per_model[m] = {"auc": None, "brier": None, "calibration": [], "n": 0,
                            "note": f"did not fit: {exc.message}"}
            continue
        alive = purchase.p_alive(summ.frequency, summ.recency, summ["T"])
        risk = pd.Series(1 - alive, index=summ.customer_key.astype(str))
        per_model[m] = _scores(y_test[buyers], risk.reindex(keys[buyers]).to_numpy(float))
        auc = per_model[m]["auc"]
        if m == name:
            notes += warned
        if auc is not None and auc < 0.5:
            notes.append(f"1 - P(alive) of {m} ranks churners worse than chance here "
                         f"(ROC-AUC {auc:.2f} < 0.5): do not read it as churn risk on "
                         "this data")
    pa = per_model[name]
    candidates = {"gradient_boosting": gb_buyers["auc"],
                  **{f"p_alive:{m}": v["auc"] for m, v in per_model.items()}}
    scored = {k: v for k, v in candidates.items() if v is not None}
    best = max(scored.values()) if scored else None
    # the best, gradient boosting on a tie (it scores every customer)
    better = None if best is None else next(
        k for k in sorted(scored, key=lambda k: k != "gradient_boosting")
        if scored[k] >= best - TIE)
    res: dict[str, Any] = {
        "days": days, "train_as_of": train_cut.isoformat(), "test_as_of": test_cut.isoformat(),
        "end": end.isoformat(), "n_train": len(train), "n_test": len(test),
        "purchasers_in_test": int(buyers.sum()), "model": name,
        "gradient_boosting": {"all": gb_all, "purchasers": gb_buyers, "features": columns,
                              "left_out": left_out},
        "p_alive": {"purchasers": pa, "warnings": notes},
        "p_alive_models": per_model,
        "better_on_purchasers": better,
        "scored": None,
    }
    if store:
        if better is None:
            res["scored"] = {"stored": False, "reason": "no model could be scored on the "
                             "holdout (one class only); nothing stored"}
        else:
            res["scored"] = _score_now(ws, engine, better, scored[better], test, y_test,
                                       end, days, settings, say)
    return res


def model_label(model: str, auc: float | None, days: int) -> str:
    """How a churn model is named to users: which model, and how well it validated."""
    what = ("gradient boosting on the customer features" if model == "gradient_boosting"
            else f"1 - P(alive) of {model.split(':', 1)[1]}")
    return what + ("" if auc is None else
                   f" (ROC-AUC {auc:.2f} on the {days}-day holdout)")


def _score_now(ws: Workspace, engine: Engine, model: str, auc: float, test: pd.DataFrame,
               y_test: np.ndarray, end: datetime, days: int, settings: RunSettings,
               say: Callable[[str], None]) -> dict[str, Any]:
    """Refit ``model`` on the newest data and store every customer's churn probability
    now (P(alive) models: purchasers only)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    cfg = ws.config.clv
    if model == "gradient_boosting":
        # trained on the newest labelled cut (the test customers and their labels)
        say("training gradient boosting on the newest labels")
        columns, _ = informative(test)
        gb = HistGradientBoostingClassifier(random_state=ws.config.segment.random_state,
                                            max_iter=200, early_stopping=True)
        gb.fit(_matrix(test, columns), y_test)
        say(f"scoring every customer as of {end.date()}")
        now = engine.execute(_features(ws, engine, end, settings))
        prob = gb.predict_proba(_matrix(now, columns))[:, 1]
        keys = now.customer_key.astype(str)
    else:
        m = model.split(":", 1)[1]
        say(f"fitting {m} on every purchase")
        summ = engine.execute(rfm_summary(engine, SummarySpec(end, None, cfg.period,
                                                              cfg.time_unit),
                                          settings.consent_mode))
        purchase, _, _ = fit_models(summ, m, ws.config.segment.random_state)
        prob = 1 - purchase.p_alive(summ.frequency, summ.recency, summ["T"])
        keys = summ.customer_key.astype(str)
    label = model_label(model, auc, days)
    out = pd.DataFrame({"customer_key": keys.to_numpy(), "churn_probability": prob})
    out = out.assign(churn_risk=out.churn_probability >= AT_RISK, model=label,
                     auc=auc, days=days)
    with engine.transaction():
        table = ibis.memtable(out).mutate(as_of=ibis.literal(end, type="timestamp('UTC')"))
        engine.replace_table(TABLE, table.select(*CHURN_SCORES.names).cast(CHURN_SCORES))
        engine.audit("clv.churn", target=TABLE, rows=len(out),
                     detail={"model": model, "auc": auc, "days": days})
    return {"stored": True, "model": model, "label": label, "auc": auc,
            "customers": len(out), "at_risk_share": float(out.churn_risk.mean())
            if len(out) else None, "threshold": AT_RISK}
