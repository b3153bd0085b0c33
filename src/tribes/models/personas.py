"""Personas: what each segment of the active version looks like, named and with an action.

Statistics are computed in the engine; only per-segment rows (and a sample of sessions for
journeys) reach Python.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.engine import Engine, md5_hex
from tribes.errors import InputError
from tribes.features import definition
from tribes.models.naming import name_segments
from tribes.prep import mark_session_starts, number_sessions
from tribes.store import (
    PERSONA_OVERRIDES,
    PERSONAS,
    active_version,
    get_run,
    keyed_events,
    members,
    require_version,
)
from tribes.workspace import RunContext

SKIP = {"customer_key", "known", "as_of", "r_score", "f_score", "m_score"}
JOURNEY_CUSTOMERS = 300  # customers per segment whose sessions give the top journeys
JOURNEY_STEPS = 4
OVERRIDE_FIELDS = ("name", "description", "action", "campaign")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def segment_stats(engine: Engine, version: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per segment and numeric feature: mean, median; and the population mean and std."""
    f = engine.table("customer_features")
    a = members(engine, version)
    j = f.join(a, f.customer_key == a.a_key)
    numeric = [c for c, t in f.schema().items()
               if c not in SKIP and (t.is_numeric()) and not t.is_boolean()]
    aggs: dict[str, ir.Scalar] = {"size": j.count()}
    for c in numeric:
        aggs[f"{c}__mean"] = j[c].mean()
        aggs[f"{c}__median"] = j[c].median()
    per = engine.execute(j.group_by("segment_id").aggregate(**aggs)).set_index("segment_id")
    pop_aggs: dict[str, ir.Scalar] = {"n": j.count()}
    for c in numeric:
        pop_aggs[f"{c}__mean"] = j[c].mean()
        pop_aggs[f"{c}__std"] = j[c].std(how="pop")
        pop_aggs[f"{c}__median"] = j[c].median()
    pop = engine.execute(j.aggregate(**pop_aggs)).iloc[0].to_dict()
    pop["features"] = numeric
    return per, pop


def _top_categories(engine: Engine, version: int, top: int = 3) -> dict[int, list[Any]]:
    a = members(engine, version)
    ev = engine.table("events")
    k = keyed_events(ev.filter(ev.category.notnull()), engine.table("identities"),
                     ["category"])
    j = k.join(a, k.customer_key == a.a_key)
    df = engine.execute(j.group_by(["segment_id", "category"]).aggregate(n=j.count()))
    out: dict[int, list[Any]] = {}
    for seg, part in df.groupby("segment_id"):
        part = part.sort_values(["n", "category"], ascending=[False, True])
        total = part.n.sum()
        out[int(seg)] = [{"value": c, "share": float(n / total)}
                         for c, n in zip(part.category[:top], part.n[:top], strict=True)]
    return out


def _journeys(engine: Engine, version: int, timeout: timedelta, top: int = 3
              ) -> dict[int, list[Any]]:
    """Most common session paths (event types in order, repeats collapsed, 4 steps)."""
    a = members(engine, version)
    ranked = a.mutate(_r=ibis.row_number().over(group_by=a.segment_id,
                                                order_by=md5_hex(a.a_key)))
    pick = ranked.filter(ranked._r < JOURNEY_CUSTOMERS).select("a_key", "segment_id")
    k = keyed_events(engine.table("events"), engine.table("identities"),
                     ["ts", "event_id", "event_type"])
    k = k.join(pick, k.customer_key == pick.a_key).select(
        "customer_key", "ts", "event_id", "event_type", "segment_id")
    n = number_sessions(mark_session_starts(k, timeout))
    paths = n.group_by(["segment_id", "customer_key", "session_seq"]).aggregate(
        path=n.event_type.collect(order_by=[n.ts, n.event_id]))
    df = engine.execute(paths.select("segment_id", "path"))
    out: dict[int, list[Any]] = {}
    for seg, part in df.groupby("segment_id"):
        counts: Counter[str] = Counter()
        for p in part.path:
            steps: list[str] = []
            for e in p:
                if not steps or steps[-1] != e:
                    steps.append(e)
            counts[" → ".join(steps[:JOURNEY_STEPS]) + (" → …" if len(steps) >
                                                        JOURNEY_STEPS else "")] += 1
        total = sum(counts.values())
        out[int(seg)] = [{"path": p, "share": c / total} for p, c in counts.most_common(top)]
    return out


def _attributes(engine: Engine, version: int, top: int = 3) -> dict[int, dict[str, Any]]:
    c = engine.table("customers")
    a = members(engine, version)
    j = c.join(a, c.customer_id == a.a_key)
    out: dict[int, dict[str, Any]] = {}
    for col in ("country", "age_band", "gender"):
        jj = j.filter(j[col].notnull())
        df = engine.execute(jj.group_by(["segment_id", col]).aggregate(n=jj.count()))
        for seg, part in df.groupby("segment_id"):
            part = part.sort_values(["n", col], ascending=[False, True])
            total = part.n.sum()
            out.setdefault(int(seg), {})[col] = [
                {"value": v, "share": float(n / total)}
                for v, n in zip(part[col][:top], part.n[:top], strict=True)]
    return out


RECENCY_GAP_DAYS = 7.0
DEFAULT_CHURN_DAYS = 60  # clv.churn_days's default: the horizon of P(alive) shares
CONTRADICTION_Z = 1.96


def _churn(engine: Engine, version: int) -> dict[int, dict[str, Any]]:
    """Per segment, the share of its scored members at churn risk and the model it comes
    from: ``churn_scores`` (the model that validated best, ``tribes clv churn``), else
    the ``clv`` table's P(alive) (not validated against churn). Empty when neither."""
    a = members(engine, version)
    for table, flag in (("churn_scores", "churn_risk"), ("clv", "churn_risk")):
        if not engine.has_table(table) or not int(engine.scalar(engine.table(table).count())):
            continue
        c = engine.table(table)
        j = c.join(a, c.customer_key == a.a_key)
        df = engine.execute(j.group_by("segment_id").aggregate(
            scored=j.count(), share=j[flag].cast("float64").mean(), model=j.model.max(),
            **({"days": j.days.max()} if table == "churn_scores" else {})))
        horizon = (int(df.days.iloc[0]) if table == "churn_scores" and len(df)
                   else DEFAULT_CHURN_DAYS)
        if table == "clv":
            model = (f"P(alive) of {df.model.iloc[0] if len(df) else '?'} below the churn "
                     "threshold (not validated against churn)")
        else:
            model = str(df.model.iloc[0]) if len(df) else ""
        return {int(r.segment_id): {"share": float(r.share), "scored": int(r.scored),
                                    "model": model, "validated": table == "churn_scores",
                                    "horizon_days": horizon, "withheld": None}
                for r in df.itertuples()}
    return {}


def recency_contradiction(churn: dict[int, dict[str, Any]],
                          recency: dict[int, float | None]) -> str | None:
    """Why the churn shares contradict the segments' own recency, or None: a segment
    whose median customer has been inactive longer than the churn horizon (``horizon_days``
    of its churn figure: churned means no event in that many days) and clearly longer
    than another's (at least twice as long and a week more) may not show a lower share
    at churn risk than that one, beyond chance (one-sided two-proportion z-test at 2.5%:
    a handful of scored customers proves nothing). Between segments still within the
    horizon a model may rank otherwise: recency is not all it knows."""
    shown = {s: c for s, c in churn.items() if c.get("share") is not None
             and recency.get(s) is not None and c.get("scored")}
    for a, ca in shown.items():
        for b, cb in shown.items():
            ra, rb = recency[a], recency[b]
            assert ra is not None and rb is not None
            lapsed = ra >= ca.get("horizon_days", DEFAULT_CHURN_DAYS)
            if not (lapsed and ra >= 2 * rb and ra - rb >= RECENCY_GAP_DAYS
                    and ca["share"] < cb["share"]):
                continue
            na, nb = ca["scored"], cb["scored"]
            pooled = (ca["share"] * na + cb["share"] * nb) / (na + nb)
            se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
            if se > 0 and (cb["share"] - ca["share"]) / se > CONTRADICTION_Z:
                return (f"segment {a}, last seen a median {ra:.0f} days ago, would show "
                        f"less churn risk ({ca['share']:.0%} of {na:,}) than segment {b}, "
                        f"seen {rb:.0f} days ago ({cb['share']:.0%} of {nb:,})")
    return None


def _clv(engine: Engine, version: int) -> dict[int, dict[str, Any]]:
    """Per segment, from the newest ``tribes clv score``: purchasers scored, mean P(alive),
    mean and total CLV (empty when CLV was never scored)."""
    if not engine.has_table("clv"):
        return {}
    c = engine.table("clv")
    a = members(engine, version)
    j = c.join(a, c.customer_key == a.a_key)
    df = engine.execute(j.group_by("segment_id").aggregate(
        scored=j.count(), p_alive=j.p_alive.mean(),
        clv_mean=j.clv.mean(), clv_total=j.clv.sum(),
        expected_purchases=j.expected_purchases.mean(), horizon=j.horizon.max()))
    total = float(df.clv_total.sum()) if not df.empty else 0.0
    return {int(r.segment_id): {
        "scored": int(r.scored), "p_alive": float(r.p_alive), "clv_mean": float(r.clv_mean),
        "clv_total": float(r.clv_total), "clv_share": float(r.clv_total) / total if total
        else None, "expected_purchases": float(r.expected_purchases), "horizon": r.horizon}
        for r in df.itertuples()}


def describe(name: str, size: int, share: float, stats: dict[str, Any],
             lifts: dict[str, float], clv: dict[str, Any] | None = None,
             churn: dict[str, Any] | None = None) -> str:
    """One paragraph that cites the segment's numbers."""
    def med(f: str) -> float | None:
        return stats.get(f, {}).get("median")

    parts = [f"{name}: {size:,} customers ({share:.0%} of those analyzed)."]
    if med("monetary") is not None:
        orders = med("frequency") or 0
        parts.append(f"Median spend {med('monetary'):,.0f} over {orders:.0f} "
                     f"order{'' if orders == 1 else 's'} (spend "
                     f"{lifts.get('monetary', 0):+.1f} sd vs everyone).")
    if med("recency_days") is not None:
        parts.append(f"Last seen a median {med('recency_days'):.0f} days ago, "
                     f"{med('sessions_per_week') or 0:.2f} sessions a week, "
                     f"{med('events_per_session') or 0:.1f} events per session.")
    ranked = sorted(((abs(v), f, v) for f, v in lifts.items() if math.isfinite(v)),
                    reverse=True)[:3]
    if ranked:
        parts.append("Most distinctive: " + ", ".join(
            f"{f} {v:+.1f} sd" for _, f, v in ranked) + ".")
    if clv:
        parts.append(f"Expected value over {clv['horizon']} {clv['clv_mean']:,.0f} per "
                     f"purchaser ({clv['clv_share'] or 0:.0%} of all CLV).")
    if churn and churn.get("share") is not None:
        parts.append(f"{churn['share']:.0%} at churn risk ({churn['model']}).")
    return " ".join(parts)


def build_personas(ctx: RunContext, version: int | None = None) -> list[dict[str, Any]]:
    """Compute the personas of ``version`` (default: the active one) and store them; the
    journeys are sessionized with the run's session timeout."""
    engine = ctx.engine
    v = require_version(engine, version)
    if not engine.has_table("customer_features"):
        raise InputError("no customer features; run: tribes features", code="E_NO_FEATURES")
    get_run(engine, v)  # a clear error for an unknown version
    per, pop = segment_stats(engine, v)
    n = float(pop["n"])
    lifts: dict[int, dict[str, float]] = {}
    stats: dict[int, dict[str, Any]] = {}
    for seg, row in per.iterrows():
        s = int(seg)  # type: ignore[call-overload]
        lifts[s], stats[s] = {}, {}
        for f in pop["features"]:
            mean, median = _num(row[f"{f}__mean"]), _num(row[f"{f}__median"])
            pm, sd = _num(pop[f"{f}__mean"]), _num(pop[f"{f}__std"])
            lift = (mean - pm) / sd if mean is not None and pm is not None and sd else 0.0
            stats[s][f] = {"mean": mean, "median": median, "population_mean": pm,
                           "population_median": _num(pop[f"{f}__median"]), "lift": lift}
            lifts[s][f] = lift
    names = name_segments({s: lifts[s] for s in lifts if s != -1},
                          {s: stats[s] for s in stats if s != -1})
    categories = _top_categories(engine, v)
    journeys = _journeys(engine, v, ctx.settings.session_timeout)
    attrs = _attributes(engine, v)
    clv = _clv(engine, v)
    churn = _churn(engine, v)
    why = recency_contradiction(
        {s: c for s, c in churn.items() if s != -1},
        {s: (stats[s].get("recency_days") or {}).get("median") for s in stats})
    if why:
        for c in churn.values():
            c["withheld"] = (f"not shown: {c['model']} contradicts the segments' "
                             f"recency ({why}); run tribes clv churn to score churn with "
                             "the model that validates best")
            c["share"] = None
    overrides = _overrides(engine)
    rows: list[dict[str, Any]] = []
    for seg, row in per.iterrows():
        s = int(seg)  # type: ignore[call-overload]
        size = int(row["size"])
        nm = names.get(s)
        name = nm.name if nm else "Unusual"
        persona = {
            "version": v, "segment_id": s, "name": name,
            "archetype": nm.archetype if nm else None,
            "archetype_score": nm.score if nm else None,
            "archetype_rule": nm.rule if nm and nm.rule else None,
            "campaign": nm.campaign if nm else "review",
            "action": nm.action if nm else "Review individually: these customers fit no "
            "segment (noise of a density method).",
            "size": size, "share": size / n if n else 0.0,
            "features": stats[s],
            "top_categories": categories.get(s, []),
            "top_channels": _top_shares(stats[s], "channel_share_"),
            "top_devices": _top_shares(stats[s], "device_share_"),
            "top_journeys": journeys.get(s, []),
            "attributes": attrs.get(s, {}),
            "clv": clv.get(s),
            "churn": churn.get(s),
            "overridden": [],
        }
        persona["description"] = describe(name, size, persona["share"], stats[s], lifts[s],
                                          clv.get(s), churn.get(s))
        for key in OVERRIDE_FIELDS:
            if s in overrides and overrides[s].get(key):
                persona[key] = overrides[s][key]
                persona["overridden"].append(key)
        rows.append(persona)
    rows.sort(key=lambda p: -p["size"])
    _store(engine, v, rows)
    return rows


def _top_shares(stats: dict[str, Any], prefix: str, top: int = 3) -> list[dict[str, Any]]:
    vals = [(f[len(prefix):], s["mean"]) for f, s in stats.items()
            if f.startswith(prefix) and s["mean"] is not None]
    vals.sort(key=lambda kv: -kv[1])
    return [{"value": k, "share": v} for k, v in vals[:top]]


def _store(engine: Engine, version: int, rows: list[dict[str, Any]]) -> None:
    t = engine.table("personas")
    with engine.transaction():
        engine.delete_where("personas", t.version == version)
        df = pd.DataFrame([{
            "version": version, "segment_id": p["segment_id"], "name": p["name"],
            "archetype": p["archetype"], "description": p["description"],
            "campaign": p["campaign"], "action": p["action"], "size": p["size"],
            "share": p["share"], "profile": json.dumps(p, default=str),
            "created_at": datetime.now(UTC)} for p in rows])
        engine.insert("personas", ibis.memtable(df).cast(PERSONAS))
        engine.audit("personas", target=f"version {version}", rows=len(rows))


def stored_personas(engine: Engine, version: int | None = None) -> list[dict[str, Any]]:
    v = active_version(engine) if version is None else version
    if v is None:
        return []
    t = engine.table("personas")
    df = engine.execute(t.filter(t.version == v).order_by(ibis.desc("size")))
    return [json.loads(p) for p in df["profile"]]


def personas_built_at(engine: Engine, version: int) -> datetime | None:
    """When the personas of ``version`` were last built (None: never)."""
    t = engine.table("personas")
    at = engine.scalar(t.filter(t.version == version).created_at.max())
    return None if at is None or pd.isna(at) else pd.Timestamp(at).to_pydatetime()


def _overrides(engine: Engine) -> dict[int, dict[str, str]]:
    t = engine.table("persona_overrides")
    df = engine.execute(t)
    return {int(r.segment_id): {k: getattr(r, k) for k in OVERRIDE_FIELDS
                                if isinstance(getattr(r, k), str) and getattr(r, k)}
            for r in df.itertuples()}


def set_overrides(engine: Engine, overrides: dict[int, dict[str, str]]) -> None:
    """Replace the overrides of the given segment ids (kept across versions: ids are
    stable)."""
    _check_unique_names(engine, overrides)
    t = engine.table("persona_overrides")
    with engine.transaction():
        if overrides:
            engine.delete_where("persona_overrides", t.segment_id.isin(list(overrides)))
        df = pd.DataFrame([{"segment_id": s, **{k: o.get(k) for k in OVERRIDE_FIELDS},
                            "updated_at": datetime.now(UTC)} for s, o in overrides.items()])
        if not df.empty:
            engine.insert("persona_overrides", ibis.memtable(df).cast(PERSONA_OVERRIDES))
        engine.audit("personas.edit", target="segments " + ",".join(map(str, overrides)),
                     detail={"overrides": {str(k): v for k, v in overrides.items()}})


def _check_unique_names(engine: Engine, overrides: dict[int, dict[str, str]]) -> None:
    """No two personas of the active version may end up with the same name."""
    final = {p["segment_id"]: p["name"] for p in stored_personas(engine)}
    final.update({s: o["name"] for s, o in overrides.items() if o.get("name")})
    seen: dict[str, int] = {}
    for seg, name in sorted(final.items()):
        key = name.strip().lower()
        if key in seen or (key == "unusual" and seg != -1):
            other = seen.get(key, -1)
            raise InputError(f"segments {other} and {seg} would both be named '{name}'; "
                             "persona names must be unique ('Unusual' is the noise "
                             "segment's)", code="E_PERSONA_NAME")
        seen[key] = seg


def feature_label(f: str) -> str:
    d = definition(f)
    return d.definition if d else f
