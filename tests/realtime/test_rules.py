"""The rules engine in memory: each rule fires when it should, once, and not otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tribes.config import Config
from tribes.models.clv.bgnbd import BGNBD
from tribes.realtime.events import EventChecker, StreamEvent
from tribes.realtime.reference import Reference
from tribes.realtime.rules import Processor, Trigger
from tribes.stats.scaling import Transform

SECRET = b"k" * 32
T0 = 1_790_000_000.0  # 2026-09-21


def config(**rules: Any) -> Config:
    return Config.model_validate({"realtime": {"rules": rules}})


def run(events: list[dict[str, Any]], *, cfg: Config | None = None,
        ref: Reference | None = None, until: float | None = None,
        batch: int = 1000) -> list[Trigger]:
    """The events in batches, timers fired up to ``until`` (default: the last event)."""
    cfg = cfg or config()
    ref = ref or Reference()
    checker = EventChecker(cfg, SECRET)
    proc = Processor(cfg.realtime, ref, session_timeout=1800, churn_threshold=0.5)
    states: dict[str, dict[str, Any]] = {}
    timers: dict[str, float] = {}
    out: list[Trigger] = []
    evs = []
    for e in events:
        r = checker.check(e, now=T0 + 20 * 365 * 86400).result
        assert isinstance(r, StreamEvent), r
        evs.append(r)
    wm = 0.0
    for i in range(0, len(evs), batch):
        part = evs[i:i + batch]
        wm = max([wm, *(e.ts for e in part)])
        due = [(m, s) for m, s in timers.items() if s <= wm]
        o = proc.process(part, states, due, wm)
        for m in (*o.fired, *o.cancel):
            timers.pop(m, None)
        timers.update(o.schedule)
        out += o.triggers
    if until is not None:
        o = proc.process([], states, [(m, s) for m, s in timers.items() if s <= until], until)
        out += o.triggers
    return out


def ev(user: str, kind: str, minutes: float, **kw: Any) -> dict[str, Any]:
    return {"user_id": user, "event": kind, "ts": T0 + minutes * 60,
            "event_id": f"{user}-{kind}-{minutes}", **kw}


def kinds(triggers: list[Trigger]) -> list[str]:
    return [t.kind for t in triggers]


def test_abandoned_cart_fires_once_after_the_timeout() -> None:
    events = [ev("a", "add_to_cart", 0, product_id="p1", price=20),
              ev("z", "page_view", 29)]
    assert kinds(run(events)) == []  # not yet: 29 minutes
    t = run([*events, ev("z", "page_view", 31), ev("z", "page_view", 90)])
    assert kinds(t) == ["trigger.abandoned_cart"]
    assert t[0].at == T0 + 30 * 60 and t[0].data["products"] == ["p1"]
    assert t[0].data["value"] == 20


def test_no_abandoned_cart_when_a_purchase_follows() -> None:
    events = [ev("a", "add_to_cart", 0), ev("a", "purchase", 10, amount=30, order_id="o1"),
              ev("z", "page_view", 120)]
    assert kinds(run(events)) == []


def test_a_purchase_after_the_timeout_does_not_cancel_it() -> None:
    events = [ev("a", "add_to_cart", 0), ev("a", "purchase", 31, amount=30)]
    assert kinds(run(events)) == ["trigger.abandoned_cart"]


def test_every_add_resets_the_cart_timer() -> None:
    events = [ev("a", "add_to_cart", 0), ev("a", "add_to_cart", 20), ev("z", "page_view", 45)]
    assert kinds(run(events)) == []
    t = run([*events, ev("z", "page_view", 51)])
    assert kinds(t) == ["trigger.abandoned_cart"] and t[0].data["items"] == 2


def test_batches_and_one_pass_agree() -> None:
    events = [ev(f"u{i % 7}", ("add_to_cart", "page_view", "purchase")[i % 3], i * 7.0,
                 amount=10) for i in range(60)]
    assert [t.trigger_id for t in run(events, batch=5)] == \
        [t.trigger_id for t in run(events)]


def test_high_value_views_once_per_session() -> None:
    cfg = config(high_value_views={"min_views": 3, "min_price": 100})
    views = [ev("a", "product_view", m, price=p, product_id=f"p{m}")
             for m, p in ((0, 150), (1, 20), (2, 120), (3, 500), (4, 900))]
    t = run(views, cfg=cfg)
    assert kinds(t) == ["trigger.high_value_views"] and t[0].data["views"] == 3
    later = [ev("a", "product_view", 100 + m, price=200) for m in range(3)]  # new session
    assert kinds(run(views + later, cfg=cfg)) == ["trigger.high_value_views"] * 2


def _ref_with_segment(key: str, segment: int) -> Reference:
    return Reference(batch_segment={key: segment}, segments={segment: "Loyal"})


def test_session_offer_for_the_customers_segment() -> None:
    from tribes.privacy.pseudonyms import pseudonym

    key = pseudonym("a", SECRET)
    cfg = config(session_offer={"offers": {"Loyal": "VIP10"}})
    ref = _ref_with_segment(key, 3)
    events = [ev("a", "page_view", 0), ev("a", "page_view", 5), ev("a", "page_view", 60),
              ev("b", "page_view", 0)]
    t = run(events, cfg=cfg, ref=ref)
    assert kinds(t) == ["trigger.session_offer"] * 2  # two sessions of a, none for b
    assert {x.data["offer"] for x in t} == {"VIP10"} and {x.segment_id for x in t} == {3}


def test_consent_refusal_and_erasure_silence_triggers() -> None:
    from tribes.privacy.pseudonyms import pseudonym

    events = [ev("a", "add_to_cart", 0), ev("b", "add_to_cart", 0), ev("z", "page_view", 60)]
    ref = Reference(consent_ids=frozenset({pseudonym("a", SECRET)}),
                    erased=frozenset({pseudonym("b", SECRET)}))
    assert kinds(run(events, ref=ref)) == []
    opt_in = Reference(consent_mode="opt-in", consent_ids=frozenset({pseudonym("a", SECRET)}))
    t = run(events, ref=opt_in)
    assert [x.customer_key for x in t] == [pseudonym("a", SECRET)]


def test_trigger_ids_are_deterministic() -> None:
    events = [ev("a", "add_to_cart", 0), ev("z", "page_view", 60)]
    assert run(events)[0].trigger_id == run(events)[0].trigger_id


def test_churn_timer_at_the_crossing_of_the_threshold() -> None:
    params = {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43}  # CDNOW (weeks)
    ref = Reference(clv={"model": "bgnbd", "params": params, "time_unit": "week"})
    cfg = config(churn_risk={"threshold": 0.5})
    week = 7 * 86400 / 60  # minutes
    events = [ev("a", "purchase", 0, amount=10), ev("a", "purchase", week, amount=10),
              ev("a", "purchase", 2 * week, amount=10)]
    proc = Processor(cfg.realtime, ref, session_timeout=1800, churn_threshold=0.5)
    assert proc.churn_model is not None
    t = run(events, cfg=cfg, ref=ref, until=T0 + 5 * 365 * 86400)
    churn = [x for x in t if x.kind == "trigger.churn_risk"]
    assert len(churn) == 1
    # at the time it fired P(alive) is at the threshold, a day before above it
    m = BGNBD.from_params(params)
    first = np.floor(T0 / 86400) * 86400
    last = np.floor((T0 + 14 * 86400) / 86400) * 86400
    unit = 7 * 86400.0

    def p(at: float) -> float:
        return float(m.p_alive(np.array([2.0]), np.array([(last - first) / unit]),
                               np.array([(at - first) / unit]))[0])

    assert p(churn[0].at) == pytest.approx(0.5, abs=1e-3)
    assert p(churn[0].at - 86400) > 0.5
    # a purchase before the crossing moves it later: no trigger yet at the old time
    more = [*events, ev("a", "purchase", (churn[0].at - T0) / 60 - 60, amount=10)]
    t2 = run(more, cfg=cfg, ref=ref, until=churn[0].at + 3600)
    assert not [x for x in t2 if x.kind == "trigger.churn_risk"]


def test_cached_churn_crossing_agrees_with_the_search_from_now() -> None:
    """churn_due keeps the crossing age per (purchases, last purchase age); it must give
    what a search from the purchase time gives, for customers of any history."""
    params = {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43}
    ref = Reference(clv={"model": "bgnbd", "params": params, "time_unit": "week"})
    proc = Processor(config().realtime, ref, session_timeout=1800, churn_threshold=0.5)
    rng = np.random.default_rng(3)
    day = 86400.0
    for _ in range(200):
        first = T0 + float(rng.integers(0, 400)) * day
        last = first + float(rng.integers(0, 300)) * day
        now = last + float(rng.uniform(0, day))
        st = {"cx": float(rng.integers(0, 12)), "cfirst": first, "clast": last}
        want = proc.churn_due_many(np.array([st["cx"]]), np.array([first]),
                                   np.array([last]), np.array([now]))[0]
        got = proc.churn_due(st, now)
        if np.isnan(want):
            assert got is None
        else:
            # both searches end on a grid some seconds wide for a crossing months ahead
            assert got == pytest.approx(want, abs=300.0)
            tx = (last - first) / (7 * day)
            p = proc.churn_model.p_alive(np.array([st["cx"]]), np.array([tx]),
                                         np.array([(got - first) / (7 * day)]))[0]
            assert got == now or p == pytest.approx(0.5, abs=1e-3)
    assert len(proc._crossings) < 200  # histories repeat: the cache is used


def test_online_assignment_moves_a_customer_between_segments() -> None:
    from tribes.privacy.pseudonyms import pseudonym

    key = pseudonym("a", SECRET)
    # one feature, n_events, unscaled; centroids at 0 and 10 events
    tr = Transform(features=("n_events",), log1p=(False,), fill=(0.0,), scaler="standard",
                   center=(0.0,), scale=(1.0,))
    ref = Reference(method="kmeans", transform=tr, version=1,
                    model={"centroids": [[0.0], [10.0]],
                           "labels_to_segments": {"0": 5, "1": 7}},
                    segments={5: "Browsers", 7: "Regulars"},
                    batch_segment={key: 5})
    events = [ev("a", "page_view", m) for m in range(8)]
    t = run(events, ref=ref, batch=1)
    assert kinds(t) == ["segment.exited", "segment.entered"]
    assert t[0].data["segment_id"] == 5 and t[1].data["segment_id"] == 7
    assert t[1].at == T0 + 5 * 60  # the 6th event: nearer to 10 than to 0
