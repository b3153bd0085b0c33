"""Statistical process control of weekly segment KPIs.

For each segment of the active version and each KPI (size: active members; conversion:
share of active members who bought; AOV: revenue per order; retention: share of the
previous week's active members active again), the weekly series gets three charts:

* **Shewhart individuals chart** with the Western Electric rules: 1) a point beyond 3
  sigma; 2) two of three in a row beyond 2 sigma on one side; 3) four of five in a row
  beyond 1 sigma on one side; 4) eight in a row on one side of the centre line.
* **EWMA** (lambda 0.2, limits at 3 sigma of the EWMA at each point).
* **Tabular CUSUM** (k = 0.5 sigma, h = 5 sigma), up and down.

The centre line and sigma come from the baseline weeks (all but the last
``spc_recent_weeks``, at least ``spc_baseline_weeks`` of them): the mean, and the mean
moving range / 1.128. Only weeks after the version was built are watched: a segment's
history up to then is how it was chosen (a "new customers" segment grows towards that
day by construction), so it is the baseline, and the last ``spc_recent_weeks`` of the
weeks since are watched. A series with signals there is one alert (``spc.signal``)
naming every chart and rule that signalled. The week still under way is left out (it
would look like a drop), and so is a first week the data begins in the middle of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd

from tribes.engine import Engine
from tribes.monitor.alerts import Alert
from tribes.store import keyed_events, members

KPIS = ("size", "conversion", "aov", "retention")
D2 = 1.128  # expected moving range of two normal values, in sigmas
LAMBDA, EWMA_L = 0.2, 3.0
CUSUM_K, CUSUM_H = 0.5, 5.0


def weekly_kpis(engine: Engine, version: int) -> pd.DataFrame:
    """week (Monday, UTC), segment_id and the KPIs, one row per complete week."""
    ev = keyed_events(engine.table("events"), engine.table("identities"),
                      columns=["ts", "event_type", "amount", "order_id", "event_id"])
    m = members(engine, version)
    j = ev.join(m, ev.customer_key == m.a_key)
    j = j.mutate(week=j.ts.truncate("W"))
    purchase = j.event_type == "purchase"
    per = j.group_by(["week", "segment_id"]).aggregate(
        size=j.customer_key.nunique(),
        buyers=j.customer_key.nunique(where=purchase),
        orders=j.order_id.fill_null(j.event_id).nunique(where=purchase),
        revenue=j.amount.sum(where=purchase))
    act = j.select("customer_key", "segment_id", "week").distinct()
    nxt = act.select(k2="customer_key", w2="week")
    kept = act.join(nxt, (act.customer_key == nxt.k2)
                    & (nxt.w2 == act.week + ibis.interval(days=7)))
    ret = kept.group_by(["week", "segment_id"]).aggregate(retained=kept.count())
    df = engine.execute(per).merge(engine.execute(ret), on=["week", "segment_id"],
                                   how="left")
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
    """One KPI series of one segment and what the charts found."""

    segment_id: int
    kpi: str
    weeks: list[str]
    values: list[float | None]
    center: float | None = None
    sigma: float | None = None
    ewma: list[float] = field(default_factory=list)
    ewma_lo: list[float] = field(default_factory=list)
    ewma_hi: list[float] = field(default_factory=list)
    cusum_up: list[float] = field(default_factory=list)
    cusum_down: list[float] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)  # rule, index, week
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def western_electric(x: np.ndarray, center: float, sigma: float) -> list[tuple[int, str]]:
    """(index, rule) of every point that completes a Western Electric pattern."""
    z = (x - center) / sigma
    out: list[tuple[int, str]] = []
    for i in range(len(z)):
        if abs(z[i]) > 3:
            out.append((i, "rule 1: beyond 3 sigma"))
            continue
        for side in (1, -1):
            last3, last5, last8 = z[max(0, i - 2):i + 1], z[max(0, i - 4):i + 1], \
                z[max(0, i - 7):i + 1]
            if side * z[i] > 2 and len(last3) == 3 and (side * last3 > 2).sum() >= 2:
                out.append((i, "rule 2: 2 of 3 beyond 2 sigma"))
                break
            if side * z[i] > 1 and len(last5) == 5 and (side * last5 > 1).sum() >= 4:
                out.append((i, "rule 3: 4 of 5 beyond 1 sigma"))
                break
            if len(last8) == 8 and (side * last8 > 0).all():
                out.append((i, "rule 4: 8 in a row on one side"))
                break
    return out


def ewma(x: np.ndarray, center: float, sigma: float, lam: float = LAMBDA,
         width: float = EWMA_L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The EWMA of ``x`` and its lower and upper limits at each point."""
    z = np.empty(len(x))
    prev = center
    for i, v in enumerate(x):
        prev = lam * v + (1 - lam) * prev
        z[i] = prev
    steps = np.arange(1, len(x) + 1)
    half = width * sigma * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * steps)))
    return z, center - half, center + half


def cusum(x: np.ndarray, center: float, sigma: float, k: float = CUSUM_K
          ) -> tuple[np.ndarray, np.ndarray]:
    """Tabular CUSUM statistics (up, down), in the KPI's units."""
    up, down = np.zeros(len(x)), np.zeros(len(x))
    cu = cd = 0.0
    for i, v in enumerate(x):
        cu = max(0.0, v - (center + k * sigma) + cu)
        cd = max(0.0, (center - k * sigma) - v + cd)
        up[i], down[i] = cu, cd
    return up, down


def chart(segment_id: int, kpi: str, weeks: list[str], values: np.ndarray, *,
          recent: int, baseline_min: int, first_new: int | None = None) -> Chart:
    """The three charts of one series. Without ``first_new``: the baseline is every point
    but the last ``recent``, which are watched. With it (the index of the first week after
    the version was built): the baseline is the weeks before, and the last ``recent`` of
    the weeks since are watched (none yet: no signal)."""
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
    if n_base < baseline_min:
        c.note = f"{n_base} baseline weeks; the charts need {baseline_min}"
        return c
    base = x[:n_base]
    center = float(base.mean())
    sigma = float(np.abs(np.diff(base)).mean() / D2)
    if not sigma > 0:
        c.note = "no variation in the baseline weeks"
        return c
    c.center, c.sigma = center, sigma
    z, lo, hi = ewma(x, center, sigma)
    up, down = cusum(x, center, sigma)
    c.ewma, c.ewma_lo, c.ewma_hi = z.tolist(), lo.tolist(), hi.tolist()
    c.cusum_up, c.cusum_down = up.tolist(), down.tolist()
    found: list[tuple[int, str]] = western_electric(x, center, sigma)
    found += [(i, "ewma: beyond its limit") for i in range(len(x))
              if z[i] < lo[i] or z[i] > hi[i]]
    found += [(i, f"cusum: {'up' if up[i] > CUSUM_H * sigma else 'down'} shift")
              for i in range(len(x)) if max(up[i], down[i]) > CUSUM_H * sigma]
    for i, rule in sorted(found):
        if i >= watch_from:
            c.signals.append({"rule": rule, "index": int(idx[i]), "week": weeks[idx[i]],
                              "value": float(x[i])})
    return c


def charts(df: pd.DataFrame, *, recent: int = 4, baseline_min: int = 8,
           since: Any = None) -> list[Chart]:
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
                             recent=recent, baseline_min=baseline_min, first_new=first_new))
    return out


def chart_alerts(found: list[Chart], names: dict[int, str], version: int) -> list[Any]:
    """One alert per (segment, KPI) with a signal in the watched weeks, naming every chart
    and rule that signalled and the week it began."""
    out = []
    for c in found:
        if not c.signals:
            continue
        first = c.signals[0]
        last = c.signals[-1]
        rules = sorted({s["rule"] for s in c.signals})
        name = names.get(c.segment_id, f"Segment {c.segment_id}")
        out.append(Alert(
            kind="spc.signal", severity="warning", subject=f"segment {c.segment_id} {c.kpi}",
            metric=c.kpi, value=last["value"], threshold=float(c.center or 0.0),
            message=f"{name}: weekly {c.kpi} {last['value']:,.3g} in the week of "
                    f"{last['week']}, out of control since the week of {first['week']} "
                    f"({'; '.join(rules)}; centre {c.center:,.3g}, sigma {c.sigma:,.3g})",
            detail={"segment_id": c.segment_id, "kpi": c.kpi, "since": first["week"],
                    "rules": rules, "center": c.center, "sigma": c.sigma,
                    "signals": c.signals}, version=version))
    return out
