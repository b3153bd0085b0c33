"""Statistical process control of weekly segment KPIs.

For each segment of the active version and each KPI (size: active members; conversion:
share of active members who bought; AOV: revenue per order; retention: share of the
previous week's active members active again), the weekly series gets a Shewhart
individuals chart whose limits are set for a known false-alarm rate.

The baseline is the weeks before the version was built (at least ``spc_baseline_weeks``
of them); the last ``spc_recent_weeks`` of the weeks since are watched. The centre line
is the baseline mean and sigma its standard deviation; the limits are the prediction
limits of one new week, centre ± t(1 - alpha/2, n - 1) × sigma × sqrt(1 + 1/n) for n
baseline weeks: a week of an in-control series falls outside them with probability alpha
exactly (``spc_false_alarm``, default 0.0027, the two tails beyond 3 sigma), however short
the baseline, since Student's t carries the error of the estimated centre and sigma. A
series of w watched weeks then signals with probability at most 1 - (1 - alpha)^w (1.08%
for four). One rule only: run rules, EWMA and CUSUM each add false alarms (with 3-sigma
limits from 8 to 16 baseline weeks, together they made 10-15% of stable series signal).

A series with a watched week outside its limits is one alert (``spc.signal``). Only weeks
after the version was built are watched: a segment's history up to then is how it was
chosen (a "new customers" segment grows towards that day by construction). The week still
under way is left out (it would look like a drop), and so is a first week the data begins
in the middle of.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.engine import Engine
from tribes.monitor.alerts import Alert
from tribes.store import CUSTOMER_WEEKS, keyed_events, members

KPIS = ("size", "conversion", "aov", "retention")
ALPHA = 0.0027  # false alarms per watched week: the two tails beyond 3 sigma of a normal


WEEKS_TABLE = "customer_weeks"
WEEKS_STAGE = "customer_weeks"


def customer_weeks(engine: Engine, keys: ir.Table | None = None) -> ir.Table:
    """Per customer and week (Monday, UTC) they were active: whether they bought, their
    purchase revenue and their distinct orders (order_id, else the purchase event).

    ``keys`` (customer_key, since): only these customers, and of each only the weeks
    from ``since`` on (null: all of them).
    """
    events = engine.table("events")
    identities = engine.table("identities")
    cols = ["ts", "event_type", "amount", "order_id", "event_id"]
    if keys is None:
        ev = keyed_events(events, identities, columns=cols)
    else:
        lo = keys.since.min().as_scalar()
        ids = identities.semi_join(keys, "customer_key")
        # a customer whose ids changed (since null) has all of their weeks redone
        every = keys.filter(keys.since.isnull())
        some = keys.filter(keys.since.notnull())
        recent = keyed_events(events.filter(events.ts >= lo.truncate("W")), ids, columns=cols)
        sk = some.select(s_key="customer_key", s_since="since")
        recent = recent.join(sk, (recent.customer_key == sk.s_key)
                             & (recent.ts.truncate("W") >= sk.s_since.truncate("W")))
        recent = recent.select(*cols, "customer_key")
        whole = keyed_events(events, ids, columns=cols).semi_join(every, "customer_key")
        ev = ibis.union(recent, whole.select(*cols, "customer_key"))
    ev = ev.mutate(week=ev.ts.truncate("W"))
    purchase = ev.event_type == "purchase"
    per = ev.group_by(["customer_key", "week"]).aggregate(
        bought=purchase.any(),
        revenue=ev.amount.sum(where=purchase),
        orders=ev.order_id.fill_null(ev.event_id).collect(where=purchase, distinct=True)
        .sort())
    # no purchase: null on every engine (some collect an empty list)
    return per.mutate(orders=ibis.ifelse(per.bought, per.orders,
                                         ibis.null("array<string>"))).cast(CUSTOMER_WEEKS)


def _stored_weeks(engine: Engine) -> ir.Table:
    """:func:`customer_weeks` of every customer, kept up to date in ``customer_weeks``
    (rebuilt after a full prep, the touched customers' weeks redone after an append).
    A workspace open for reading only reads the stored table when it reflects the last
    prep (the report, after ``tribes run``), and computes it afresh otherwise."""
    from tribes.prep import last_prep, touched_after
    from tribes.store import events_fingerprint, last_run, new_run_id, record_run

    prep = last_prep(engine)
    if prep is None:
        return customer_weeks(engine)
    done = last_run(engine, WEEKS_STAGE)
    of = (done or {}).get("report", {}).get("prep_run")
    if of == prep["run_id"]:
        return engine.table(WEEKS_TABLE)
    if engine.read_only:
        return customer_weeks(engine)
    touched = touched_after(engine, prep, of)
    started = datetime.now(UTC)
    with engine.transaction():
        if touched is not None:
            stored = engine.table(WEEKS_TABLE)
            t = touched.select(t_key="customer_key", t_since="since")
            # (an equi-join, then the test: with the test in the join condition, the
            # engine compares every pair)
            j = stored.join(t, stored.customer_key == t.t_key)
            gone = j.filter(j.t_since.isnull() | (j.week >= j.t_since.truncate("W")))
            fresh = engine.create_temp("_spc_fresh", customer_weeks(engine, touched))
            # delete by (customer, week): a customer's rows before ``since`` stay
            drop = engine.create_temp("_spc_drop", gone.select("customer_key", "week"))
            engine.delete_where(WEEKS_TABLE, _pair_in(stored, drop))
            engine.insert(WEEKS_TABLE, fresh)
            how = "incremental"
        else:
            engine.replace_table(WEEKS_TABLE, customer_weeks(engine))
            how = "full"
        record_run(engine, run_id=new_run_id(WEEKS_STAGE, started), stage=WEEKS_STAGE,
                   started_at=started, fingerprint=events_fingerprint(engine), params={},
                   report={"prep_run": prep["run_id"], "how": how})
    for name in ("_spc_fresh", "_spc_drop"):
        engine.drop_temp(name)
    return engine.table(WEEKS_TABLE)


def _pair_in(t: ir.Table, pairs: ir.Table) -> ir.BooleanValue:
    """``t``'s (customer_key, week) is a row of ``pairs``."""
    key = t.customer_key.concat("|", t.week.cast("string"))
    other = pairs.customer_key.concat("|", pairs.week.cast("string"))
    return key.isin(other)


def weekly_kpis(engine: Engine, version: int) -> pd.DataFrame:
    """week (Monday, UTC), segment_id and the KPIs, one row per complete week."""
    cw = _stored_weeks(engine)
    m = members(engine, version)
    j = cw.join(m, cw.customer_key == m.a_key)
    o = j.select("week", "segment_id", order=j.orders.unnest())
    n_orders = o.group_by(["week", "segment_id"]).aggregate(orders=o.order.nunique())
    per = j.group_by(["week", "segment_id"]).aggregate(
        size=j.count(),
        buyers=j.bought.cast("int64").sum(),
        revenue=j.revenue.sum())
    act = j.select("customer_key", "segment_id", "week")
    nxt = act.select(k2="customer_key", w2="week")
    kept = act.join(nxt, (act.customer_key == nxt.k2)
                    & (nxt.w2 == act.week + ibis.interval(days=7)))
    ret = kept.group_by(["week", "segment_id"]).aggregate(retained=kept.count())
    df = engine.execute(per).merge(engine.execute(ret), on=["week", "segment_id"],
                                   how="left").merge(engine.execute(n_orders),
                                                     on=["week", "segment_id"], how="left")
    df["orders"] = df["orders"].fillna(0)
    events = engine.table("events")
    first, last = engine.scalar(events.ts.min()), engine.scalar(events.ts.max())
    if df.empty or last is None:
        return pd.DataFrame(columns=["week", "segment_id", *KPIS])
    df["week"] = pd.to_datetime(df["week"], utc=True)
    df = df.sort_values(["segment_id", "week"]).reset_index(drop=True)
    # retention of week w: of w-1's active members, those active in w
    df["retained"] = df["retained"].fillna(0)
    prev = df.groupby("segment_id")[["week", "size", "retained"]].shift(1)
    follows = (df["week"] - prev["week"]) == pd.Timedelta(days=7)
    df["retention"] = np.where(follows, prev["retained"] / prev["size"], np.nan)
    df["conversion"] = df["buyers"] / df["size"]
    df["aov"] = np.where(df["orders"] > 0, df["revenue"] / df["orders"].where(
        df["orders"] > 0, 1), np.nan)
    first_day, last_ts = (_utc(first).floor("D"), _utc(last))
    # complete weeks only: the data may begin, and ends, in the middle of one
    df = df[(df["week"] >= first_day) & (df["week"] + pd.Timedelta(days=7) <= last_ts)]
    return df[["week", "segment_id", *KPIS]].astype({"size": float})


def _utc(v: Any) -> pd.Timestamp:
    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


@dataclass
class Chart:
    """One KPI series of one segment and what its chart found."""

    segment_id: int
    kpi: str
    weeks: list[str]
    values: list[float | None]
    center: float | None = None
    sigma: float | None = None
    lower: float | None = None  # the control limits
    upper: float | None = None
    baseline_weeks: int = 0
    signals: list[dict[str, Any]] = field(default_factory=list)  # rule, index, week, value
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@functools.lru_cache(maxsize=512)
def limit_factor(n_base: int, alpha: float = ALPHA) -> float:
    """Half the width of the limits, in baseline standard deviations: one new week of an
    in-control normal series falls outside mean ± factor × SD of ``n_base`` baseline weeks
    with probability ``alpha`` (the prediction interval of one new value)."""
    from scipy import stats  # slow to import: on use

    return float(stats.t.ppf(1 - alpha / 2, n_base - 1) * np.sqrt(1 + 1 / n_base))


def chart(segment_id: int, kpi: str, weeks: list[str], values: np.ndarray, *,
          recent: int, baseline_min: int, first_new: int | None = None,
          alpha: float = ALPHA) -> Chart:
    """The individuals chart of one series. Without ``first_new``: the baseline is every
    point but the last ``recent``, which are watched. With it (the index of the first week
    after the version was built): the baseline is the weeks before, and the last
    ``recent`` of the weeks since are watched (none yet: no signal). A watched week
    outside the limits is a signal; ``alpha`` is the chance that an in-control week is."""
    c = Chart(segment_id=segment_id, kpi=kpi, weeks=weeks,
              values=[None if v != v else float(v) for v in values])
    ok = ~np.isnan(values)
    x = values[ok]
    idx = np.flatnonzero(ok)
    if first_new is None:
        n_base, watch_from = len(x) - recent, len(x) - recent
    else:
        n_base = int((idx < first_new).sum())
        watch_from = max(n_base, len(x) - recent)
        if n_base == len(x):
            c.note = "no complete week since the version was built"
    if n_base < max(baseline_min, 2):
        c.note = f"{n_base} baseline weeks; the charts need {baseline_min}"
        return c
    base = x[:n_base]
    center, sigma = float(base.mean()), float(base.std(ddof=1))
    if not sigma > 0:
        c.note = "no variation in the baseline weeks"
        return c
    half = limit_factor(n_base, alpha) * sigma
    c.center, c.sigma, c.baseline_weeks = center, sigma, n_base
    c.lower, c.upper = center - half, center + half
    for i in range(watch_from, len(x)):
        if not c.lower <= x[i] <= c.upper:
            rule = "above the upper limit" if x[i] > c.upper else "below the lower limit"
            c.signals.append({"rule": rule, "index": int(idx[i]), "week": weeks[idx[i]],
                              "value": float(x[i])})
    return c


def charts(df: pd.DataFrame, *, recent: int = 4, baseline_min: int = 8,
           since: Any = None, alpha: float = ALPHA) -> list[Chart]:
    """Every (segment, KPI) chart of a :func:`weekly_kpis` frame. ``since``: when the
    version's data ends; only weeks wholly after it are watched (a segment's own history
    up to then is how it was chosen, so it trends by construction)."""
    out = []
    cut = None if since is None else pd.Timestamp(since)
    if cut is not None and cut.tzinfo is None:
        cut = cut.tz_localize("UTC")
    for sid, g in df.groupby("segment_id", sort=True):
        weeks = [w.date().isoformat() for w in g["week"]]
        first_new = None if cut is None else int((g["week"] < cut).sum())
        for kpi in KPIS:
            out.append(chart(int(str(sid)), kpi, weeks, g[kpi].to_numpy(dtype=float),
                             recent=recent, baseline_min=baseline_min, first_new=first_new,
                             alpha=alpha))
    return out


def chart_alerts(found: list[Chart], names: dict[int, str], version: int) -> list[Any]:
    """One alert per (segment, KPI) with a watched week outside its limits, saying the
    latest such week, the first, and the limits."""
    out = []
    for c in found:
        if not c.signals:
            continue
        first, last = c.signals[0], c.signals[-1]
        name = names.get(c.segment_id, f"Segment {c.segment_id}")
        out.append(Alert(
            kind="spc.signal", severity="warning", subject=f"segment {c.segment_id} {c.kpi}",
            metric=c.kpi, value=last["value"], threshold=float(c.center or 0.0),
            message=f"{name}: weekly {c.kpi} {last['value']:,.3g} in the week of "
                    f"{last['week']}, {last['rule']} ({c.lower:,.3g} to {c.upper:,.3g}, "
                    f"centre {c.center:,.3g} from {c.baseline_weeks} baseline weeks); out "
                    f"of its limits since the week of {first['week']}",
            detail={"segment_id": c.segment_id, "kpi": c.kpi, "since": first["week"],
                    "rules": sorted({s["rule"] for s in c.signals}), "center": c.center,
                    "sigma": c.sigma, "lower": c.lower, "upper": c.upper,
                    "baseline_weeks": c.baseline_weeks, "signals": c.signals},
            version=version))
    return out
