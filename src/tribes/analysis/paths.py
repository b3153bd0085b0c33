"""Session paths: the most common ones, what leads to an event, what follows it.

A session's path is its event types in order (ts, then event_id) with consecutive repeats
merged. Paths are read for the sessions of a deterministic sample of customers
(:data:`SAMPLE_CUSTOMERS`), so the work stays bounded on large data.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.analysis.journeys import journey_events
from tribes.engine import Engine, md5_hex, micros_between
from tribes.prep import mark_session_starts, number_sessions

SAMPLE_CUSTOMERS = 50_000
PURCHASE = "purchase"


def _sampled_events(engine: Engine, segment: int | None, cohort: str | None,
                    consent_mode: str) -> ir.Table:
    """``customer_key, ts, event_id, event_type`` of the sampled customers."""
    ev = journey_events(engine, ["event_type"], segment, consent_mode, cohort=cohort)
    keys = ev.select("customer_key").distinct()
    keys = keys.order_by(md5_hex(keys.customer_key)).limit(SAMPLE_CUSTOMERS)
    ev = ev.semi_join(keys, "customer_key")
    return ev.select("customer_key", "ts", "event_id", "event_type")


def session_paths(engine: Engine, *, segment: int | None = None, cohort: str | None = None,
                  timeout: timedelta = timedelta(minutes=30),
                  consent_mode: str = "opt-out") -> list[list[str]]:
    """Every sampled session's path (repeats merged)."""
    ev = _sampled_events(engine, segment, cohort, consent_mode)
    n = number_sessions(mark_session_starts(ev, timeout))
    df = engine.execute(n.group_by(["customer_key", "session_seq"]).aggregate(
        path=n.event_type.collect(order_by=[n.ts, n.event_id])).select("path"))
    out = []
    for p in df["path"]:
        steps: list[str] = []
        for e in p:
            if not steps or steps[-1] != e:
                steps.append(str(e))
        out.append(steps)
    return out


def path_heads(engine: Engine, *, length: int = 6, segment: int | None = None,
               cohort: str | None = None, timeout: timedelta = timedelta(minutes=30),
               consent_mode: str = "opt-out") -> Counter[tuple[str, ...]]:
    """The sessions of :func:`session_paths` counted by the first ``length`` steps of
    their path (all of it when shorter): ``Counter(tuple(p[:length]) for p in
    session_paths(...))``, counted in the engine instead of collecting every path.

    Per customer, in event order: a session starts after a gap over ``timeout``; a step is
    a session's first event or one of another type than the event before; the running
    counts of both number each step within its session.
    """
    ev = _sampled_events(engine, segment, cohort, consent_mode)
    order = ibis.window(group_by=ev.customer_key, order_by=[ev.ts, ev.event_id])
    limit = round(timeout.total_seconds() * 1_000_000)
    m = ev.mutate(prev=ev.event_type.lag().over(order),
                  gap=micros_between(ev.ts, ev.ts.lag().over(order))).view()
    starts = m.gap.isnull() | (m.gap > limit)
    m = m.mutate(starts=starts, step=starts | (m.prev != m.event_type)).view()
    upto = ibis.window(group_by=m.customer_key, order_by=[m.ts, m.event_id],
                       preceding=None, following=0)
    n = m.mutate(session=m.starts.cast("int64").sum().over(upto),
                 steps=m.step.cast("int64").sum().over(upto)).view()
    n = n.filter(n.step)
    n = n.mutate(k=n.steps - n.steps.min().over(group_by=[n.customer_key, n.session]) + 1)
    cols = [f"s{i}" for i in range(1, length + 1)]
    per = n.filter(n.k <= length).group_by(["customer_key", "session"]).aggregate(
        **{c: n.event_type.max(where=n.k == i) for i, c in enumerate(cols, start=1)})
    df = engine.execute(per.group_by(cols).aggregate(n=per.count()))
    heads: Counter[tuple[str, ...]] = Counter()
    for *steps, sessions in df.itertuples(index=False):
        # a path shorter than length has nulls for the steps it does not have
        heads[tuple(v for v in steps if isinstance(v, str))] += int(sessions)
    return heads


def _label(steps: list[str], max_length: int) -> str:
    return " → ".join(steps[:max_length]) + (" → …" if len(steps) > max_length else "")


def top_paths(paths: list[list[str]], *, top: int = 20, max_length: int = 6
              ) -> list[dict[str, Any]]:
    """Most common paths with their share, and how often such sessions end in a purchase
    and on which step they end (the drop-off point)."""
    counts: Counter[str] = Counter()
    bought: Counter[str] = Counter()
    last: dict[str, Counter[str]] = {}
    for p in paths:
        label = _label(p, max_length)
        counts[label] += 1
        bought[label] += PURCHASE in p
        last.setdefault(label, Counter())[p[-1]] += 1
    total = sum(counts.values()) or 1
    return [{"path": lab, "sessions": n, "share": n / total,
             "purchase_rate": bought[lab] / n,
             "ends_on": last[lab].most_common(1)[0][0]}
            for lab, n in counts.most_common(top)]


def leading_to(paths: list[list[str]], event: str, *, steps: int = 3, top: int = 10
               ) -> list[dict[str, Any]]:
    """The ``steps`` events before the first ``event`` of a session, most common first."""
    counts: Counter[str] = Counter()
    for p in paths:
        if event in p:
            i = p.index(event)
            counts[" → ".join(p[max(0, i - steps):i + 1])] += 1
    total = sum(counts.values()) or 1
    return [{"path": k, "sessions": n, "share": n / total} for k, n in counts.most_common(top)]


def following(paths: list[list[str]], event: str, *, without: str | None = PURCHASE,
              steps: int = 3, top: int = 10) -> list[dict[str, Any]]:
    """What happens after the first ``event`` in sessions without ``without`` (friction)."""
    counts: Counter[str] = Counter()
    for p in paths:
        if event in p and (without is None or without not in p):
            i = p.index(event)
            rest = p[i:i + steps + 1]
            counts[" → ".join(rest) + (" (end)" if i + steps + 1 >= len(p) else "")] += 1
    total = sum(counts.values()) or 1
    return [{"path": k, "sessions": n, "share": n / total} for k, n in counts.most_common(top)]


def sankey_links(paths: list[list[str]], *, max_length: int = 5, min_share: float = 0.005
                 ) -> dict[str, Any]:
    """Nodes ``step i: event`` and the session flows between consecutive steps."""
    return sankey_from_heads(Counter(tuple(p[:max_length + 1]) for p in paths),
                             max_length=max_length, min_share=min_share)


def sankey_from_heads(heads: Counter[tuple[str, ...]], *, max_length: int = 5,
                      min_share: float = 0.005) -> dict[str, Any]:
    """:func:`sankey_links` from the sessions counted by the first ``max_length + 1``
    steps of their path (:func:`path_heads` with ``length=max_length + 1``)."""
    flows: Counter[tuple[str, str]] = Counter()
    for head, sessions in heads.items():
        steps = [*head[:max_length], "(end)" if len(head) <= max_length else "(continues)"]
        for i in range(len(steps) - 1):
            flows[(f"{i + 1}. {steps[i]}", f"{i + 2}. {steps[i + 1]}")] += sessions
    total = sum(heads.values()) or 1
    big = {k: v for k, v in flows.items() if v / total >= min_share}
    # keep a flow only when its source is reached by a kept flow (or is a first step), so
    # no node floats without the flows that lead to it
    kept: dict[tuple[str, str], int] = {}
    reached: set[str] = set()
    for (a, b), v in sorted(big.items(), key=lambda kv: (_step(kv[0][0]), kv[0])):
        if _step(a) == 1 or a in reached:
            kept[(a, b)] = v
            reached.add(b)
    nodes = sorted({n for k in kept for n in k}, key=lambda s: (_step(s), s))
    idx = {n: i for i, n in enumerate(nodes)}
    # nodes placed in the column of their step, the busiest on top
    volume: Counter[str] = Counter()
    for (a, b), v in kept.items():
        volume[a] += v
        volume[b] += v
    last = max((_step(n) for n in nodes), default=1)
    x, y = [0.0] * len(nodes), [0.0] * len(nodes)
    for step in {_step(n) for n in nodes}:
        col = sorted((n for n in nodes if _step(n) == step), key=lambda n: -volume[n])
        for r, n in enumerate(col):
            x[idx[n]] = 0.001 + 0.998 * (step - 1) / max(last - 1, 1)
            y[idx[n]] = 0.001 + 0.998 * (r + 0.5) / len(col)
    return {"nodes": nodes, "x": x, "y": y,
            "links": [{"source": idx[a], "target": idx[b], "value": v}
                      for (a, b), v in kept.items()]}


def _step(node: str) -> int:
    return int(node.split(".")[0])


def sankey_figure(links: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    node: dict[str, Any] = {"label": links["nodes"], "pad": 12, "thickness": 14}
    if links.get("x"):
        node.update(x=links["x"], y=links["y"])
    fig = go.Figure(go.Sankey(
        arrangement="snap", node=node,
        link={"source": [x["source"] for x in links["links"]],
              "target": [x["target"] for x in links["links"]],
              "value": [x["value"] for x in links["links"]]}))
    fig.update_layout(title="Session flows (first steps; flows under 0.5% of sessions hidden)")
    return fig


__all__ = ["following", "leading_to", "path_heads", "sankey_figure", "sankey_from_heads",
           "sankey_links", "session_paths", "top_paths"]
