"""A/B tests by segment: uplift per segment of the active version and overall.

Given assignments (customer id, variant, exposure time) and the events, each exposed
customer's outcome is measured in the ``window`` after their exposure:

* ``conversion``: bought at least once (rate);
* ``revenue``: the sum of their purchases (mean, zeros included);
* ``ctr``: clicks over impressions (rate over impressions, which are taken as
  independent trials).

With ``cuped``, the same metric in the ``pre`` period before exposure removes the part of
the outcome that pre-existing behavior predicts (conversion, revenue). See
:mod:`tribes.stats.ab` for the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.privacy import consent_filter, pseudonym
from tribes.stats import (
    benjamini_hochberg,
    bootstrap_diff,
    cuped,
    holm,
    newcombe,
    srm,
    two_proportion_p,
    welch,
    wilson,
)
from tribes.store import active_version, keyed_consents, keyed_events, members
from tribes.store import segment_names as names_of
from tribes.workspace import RunContext, Workspace

AB_METRICS = ("conversion", "revenue", "ctr")
ID_NAMES = ("customer_id", "user_id", "customer", "userid", "id")
VARIANT_NAMES = ("variant", "group", "arm", "treatment")
TIME_NAMES = ("exposed_at", "exposure_time", "exposure_ts", "assigned_at", "ts",
              "timestamp", "time")


@dataclass(frozen=True)
class Design:
    metric: str
    control: str
    treatment: str
    alpha: float = 0.05
    correction: str = "holm"  # holm | bh
    cuped: bool = True
    resamples: int = 2000
    seed: int = 0


def _column(df: pd.DataFrame, names: tuple[str, ...], what: str) -> str:
    lower = {c.lower(): c for c in df.columns}
    for n in names:
        if n in lower:
            return lower[n]
    raise InputError(f"the assignments have no {what} column (looked for "
                     f"{', '.join(names)}; found {', '.join(map(str, df.columns))})",
                     code="E_AB")


def read_assignments(ws: Workspace, engine: Engine, df: pd.DataFrame) -> pd.DataFrame:
    """customer_key, variant, exposed_at (UTC), the id as given and whether it is known
    here (an id of a customer the workspace has seen)."""
    idc = _column(df, ID_NAMES, "customer id")
    vc = _column(df, VARIANT_NAMES, "variant")
    tc = _column(df, TIME_NAMES, "exposure time")
    out = pd.DataFrame({"raw": df[idc].astype(str).str.strip(),
                        "variant": df[vc].astype(str).str.strip()})
    ts = pd.to_datetime(df[tc], utc=True, errors="coerce", format="mixed")
    bad = int(ts.isna().sum())
    if bad:
        raise InputError(f"{bad} exposure times cannot be read (e.g. "
                         f"'{df[tc][ts.isna()].iloc[0]}'); use ISO-8601", code="E_AB")
    out["exposed_at"] = ts
    secret = ws.secret()
    out["pid"] = [pseudonym(r, secret) for r in out["raw"]]
    ids = engine.table("identities")
    known = engine.execute(ids.filter(ids.id.isin(list(set(out["pid"]))))
                           .select("id", "customer_key"))
    key_of = dict(zip(known["id"], known["customer_key"], strict=True))
    out["customer_key"] = [key_of.get(p, p) for p in out["pid"]]
    out["known"] = [p in key_of for p in out["pid"]]
    dup = out.duplicated("customer_key", keep="first")
    if dup.any():  # the first exposure counts
        out = out.sort_values("exposed_at").drop_duplicates("customer_key", keep="first")
    return out[["customer_key", "variant", "exposed_at", "raw", "known"]].rename(
        columns={"raw": "id"}).reset_index(drop=True)


def outcomes(ctx: RunContext, assigned: pd.DataFrame, metric: str, *,
             window: timedelta, pre: timedelta, click_types: list[str],
             impression_types: list[str]) -> pd.DataFrame:
    """Per exposed customer: y (and n for ctr) in the window, x in the pre period, and
    the segment of the active version (customers without analytics consent left out)."""
    engine = ctx.engine
    a = ibis.memtable(assigned[["customer_key", "exposed_at"]].rename(
        columns={"customer_key": "a_key"}))
    ev = keyed_events(engine.table("events"), engine.table("identities"),
                      columns=["ts", "event_type", "amount"])
    j = ev.join(a, ev.customer_key == a.a_key)
    after = (j.ts > j.exposed_at) & (j.ts <= j.exposed_at + ibis.interval(
        seconds=int(window.total_seconds())))
    before = (j.ts <= j.exposed_at) & (j.ts > j.exposed_at - ibis.interval(
        seconds=int(pre.total_seconds())))
    if metric == "ctr":
        click = j.event_type.isin(click_types)
        imp = j.event_type.isin(impression_types)
        aggs = {"y": (after & click).cast("int64").sum(),
                "n": (after & imp).cast("int64").sum(),
                "x": (before & click).cast("int64").sum()}
    else:
        buy = j.event_type == "purchase"
        if metric == "conversion":
            aggs = {"y": (after & buy).cast("int64").max(),
                    "x": (before & buy).cast("int64").max()}
        else:
            amt = j.amount.fill_null(0.0)
            aggs = {"y": ibis.ifelse(after & buy, amt, 0.0).sum(),
                    "x": ibis.ifelse(before & buy, amt, 0.0).sum()}
    per = engine.execute(j.group_by("a_key").aggregate(**aggs))
    df = assigned.merge(per.rename(columns={"a_key": "customer_key"}), on="customer_key",
                        how="left")
    for c in ("y", "x", "n"):
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0.0).astype(float)
    # analytics consent: who refused is not analyzed
    keys = ibis.memtable(df[["customer_key"]])
    allowed = engine.execute(consent_filter(keys, "customer_key", keyed_consents(engine),
                                            ctx.settings.consent_mode))
    excluded = len(df) - len(set(allowed["customer_key"]))
    df = df[df["customer_key"].isin(set(allowed["customer_key"]))]
    version = active_version(engine)
    df["segment_id"] = np.nan
    if version is not None:
        m = engine.execute(members(engine, version))
        seg = dict(zip(m["a_key"], m["segment_id"], strict=True))
        df["segment_id"] = df["customer_key"].map(seg)
    df.attrs["excluded_by_consent"] = excluded
    df.attrs["version"] = version
    return df.reset_index(drop=True)


def compare(df: pd.DataFrame, d: Design) -> dict[str, Any]:
    """Uplift of treatment over control in ``df`` (columns variant, y[, n], x)."""
    c, t = df[df.variant == d.control], df[df.variant == d.treatment]
    out: dict[str, Any] = {"n_control": len(c), "n_treatment": len(t)}
    if len(c) < 2 or len(t) < 2:
        return {**out, "note": "too few customers in a variant"}
    if d.metric in ("conversion", "ctr"):
        if d.metric == "ctr":
            x1, n1, x2, n2 = c.y.sum(), c.n.sum(), t.y.sum(), t.n.sum()
        else:
            x1, n1, x2, n2 = c.y.sum(), len(c), t.y.sum(), len(t)
        if n1 == 0 or n2 == 0:
            return {**out, "note": "no impressions in a variant"}
        p1, p2 = x1 / n1, x2 / n2
        lo, hi = newcombe(x1, n1, x2, n2, d.alpha)
        out.update(control=p1, treatment=p2, uplift=p2 - p1,
                   relative=(p2 - p1) / p1 if p1 else None, ci=[lo, hi],
                   p_value=two_proportion_p(x1, n1, x2, n2),
                   ci_control=list(wilson(x1, n1, d.alpha)),
                   ci_treatment=list(wilson(x2, n2, d.alpha)), method="Newcombe")
    else:
        diff, lo, hi, p = welch(c.y.to_numpy(), t.y.to_numpy(), d.alpha)
        blo, bhi = bootstrap_diff(c.y.to_numpy(), t.y.to_numpy(), resamples=d.resamples,
                                  alpha=d.alpha, seed=d.seed)
        m1 = float(c.y.mean())
        out.update(control=m1, treatment=float(t.y.mean()), uplift=diff,
                   relative=diff / m1 if m1 else None, ci=[lo, hi], p_value=p,
                   ci_bootstrap=[blo, bhi], method="Welch")
    if d.cuped and d.metric != "ctr":
        both = pd.concat([c, t])
        adj, theta = cuped(both.y.to_numpy(), both.x.to_numpy())
        ac, at = adj[:len(c)], adj[len(c):]
        diff, lo, hi, p = welch(ac, at, d.alpha)
        raw_var = np.var(c.y, ddof=1) / len(c) + np.var(t.y, ddof=1) / len(t)
        adj_var = np.var(ac, ddof=1) / len(ac) + np.var(at, ddof=1) / len(at)
        out["cuped"] = {"uplift": diff, "ci": [lo, hi], "p_value": p, "theta": theta,
                        "variance_reduction": float(1 - adj_var / raw_var)
                        if raw_var > 0 else 0.0}
    return out


def analyze_experiment(df: pd.DataFrame, d: Design, *, split: list[float] | None = None,
                       names: dict[int, str] | None = None) -> dict[str, Any]:
    """Overall and per segment, adjusted p-values across segments, the sample-ratio
    check and a statement of which segments respond."""
    variants = sorted(df.variant.unique())
    counts = [int((df.variant == v).sum()) for v in (d.control, d.treatment)]
    srm_p = srm(counts, split or [1.0, 1.0])
    overall = compare(df, d)
    segs = []
    for sid, g in df.dropna(subset=["segment_id"]).groupby("segment_id"):
        r = compare(g, d)
        r["segment_id"] = seg = int(float(str(sid)))
        r["segment"] = (names or {}).get(seg, f"Segment {seg}")
        segs.append(r)
    key = "cuped" if d.cuped and d.metric != "ctr" else None
    tested = [s for s in segs if "p_value" in s]
    raw = [(s[key]["p_value"] if key else s["p_value"]) for s in tested]
    adjusted = (holm(raw) if d.correction == "holm" else benjamini_hochberg(raw)) \
        if raw else []
    for s, p in zip(tested, adjusted, strict=True):
        s["p_adjusted"] = p
        s["responds"] = p < d.alpha
    responding = [s for s in tested if s["responds"]]
    return {"metric": d.metric, "control": d.control, "treatment": d.treatment,
            "variants": variants, "alpha": d.alpha, "correction": d.correction,
            "cuped": key is not None, "srm": {"counts": dict(zip(
                (d.control, d.treatment), counts, strict=True)), "split": split or [1, 1],
                "p_value": srm_p, "mismatch": bool(srm_p < 0.001)},
            "overall": overall, "segments": segs,
            "statement": statement(responding, tested, d, key)}


def statement(responding: list[dict[str, Any]], tested: list[dict[str, Any]], d: Design,
              key: str | None) -> str:
    unit = "points" if d.metric in ("conversion", "ctr") else "per customer"
    scale = 100 if d.metric in ("conversion", "ctr") else 1

    def one(s: dict[str, Any]) -> str:
        r = s[key] if key else s
        lo, hi = r["ci"]
        return (f"{s['segment']} ({r['uplift'] * scale:+.2f} {unit}, {1 - d.alpha:.0%} CI "
                f"{lo * scale:+.2f} to {hi * scale:+.2f}, adjusted p = {s['p_adjusted']:.3g})")

    if not tested:
        return "No segment has enough customers in both variants to test."
    if not responding:
        return (f"No segment responds to {d.treatment} at α = {d.alpha:g} after "
                f"{'Holm' if d.correction == 'holm' else 'Benjamini-Hochberg'} correction "
                f"({len(tested)} segments tested).")
    return (f"{len(responding)} of {len(tested)} segments respond to {d.treatment}: "
            + "; ".join(one(s) for s in responding) + ".")


def segment_names(engine: Engine) -> dict[int, str]:
    """Names of the active version's segments (none without a version)."""
    v = active_version(engine)
    return {} if v is None else names_of(engine, v)
