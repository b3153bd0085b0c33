"""The rules engine: events and due timers in, new customer state and triggers out.

Pure Python over plain dicts, so the same code runs on Redis state (``tribes stream``)
and in memory (``tribes triggers test``). Time is event time: timers fire when the
watermark (the newest event time seen, advancing with the clock while the stream is
quiet) passes them, and events and timers are interleaved in event-time order, so a
replay of old events gives the triggers they would have given live.

Rules (configured in ``[realtime.rules]``, see tribes.toml):

* ``abandoned_cart``: an add to cart with no cancel event (checkout, purchase, ...) within
  ``after``: a timer per customer, reset by every add, removed by a cancel.
* ``high_value_views``: ``min_views`` views of products priced ``min_price`` or more in one
  session; once per session.
* ``session_offer``: at the first event of a session, the offer configured for the
  customer's segment.
* ``churn_risk``: when P(alive) of the CLV fit falls below the threshold: a timer at the
  time it will, rescheduled by every purchase.
* ``segment_change``: ``segment.exited`` and ``segment.entered`` when online assignment
  moves a customer.
"""

from __future__ import annotations

import binascii
import hashlib
import heapq
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tribes.config import RealtimeConfig
from tribes.hooks import Trigger
from tribes.realtime import online
from tribes.realtime.events import StreamEvent
from tribes.realtime.reference import Reference

# numeric state fields, in their stored order (new ones go at the end: an older state
# lacks them and gets 0)
NUMERIC = ("v", "first", "last", "ss", "sl", "sn", "sv", "so", "sh", "sc", "sp", "ne", "ns",
           "no", "nm", "nd", "nsup", "ncs", "nas", "cart", "ci", "cv", "cx", "cfirst",
           "clast", "churn", "cf", "seg", "hasseg", "sb")
TEXT = ("cats", "cp", "lo")  # JSON lists / last order id
CART, CHURN = "cart", "churn"
RULES = ("abandoned_cart", "high_value_views", "session_offer", "churn_risk",
         "segment_change")
MAX_CATEGORIES = 50
MAX_CART_PRODUCTS = 20
UNIT_SECONDS = {"day": 86_400.0, "week": 7 * 86_400.0, "month": 365.25 / 12 * 86_400.0}
TEN_YEARS = 3653 * 86_400.0
# the rules' clock follows event time, but never runs ahead of the wall clock by more
CLOCK_SKEW = 60.0
# the churn crossing search: a grid from now to ten years on, dense near now, refined
_STEPS = TEN_YEARS * (np.geomspace(1.0, 2.0 ** 20, 64) - 1.0) / (2.0 ** 20 - 1.0)
_FRACTIONS = np.linspace(0.0, 1.0, 65)


def trigger_id(kind: str, key: str, anchor: str) -> str:
    """Deterministic, so a redelivered event gives the same id (the idempotency key)."""
    return "t" + hashlib.sha256(f"{kind}|{key}|{anchor}".encode()).hexdigest()[:23]


_ZERO: dict[str, Any] = dict.fromkeys(NUMERIC, 0.0)


def new_state() -> dict[str, Any]:
    st = _ZERO.copy()
    st.update(cats=[], cp=[], lo="")
    return st


_PACK = struct.Struct(f"<{len(NUMERIC)}d")
STATE_ITEMS = 10  # encode_flat: five fields and their values
TRIGGER_ITEMS = 14  # Trigger.to_message: seven fields and their values


def decode(raw: dict[str, str | None]) -> dict[str, Any]:
    """State from its Redis hash: ``v`` (version), ``s`` (the numbers, packed as doubles in
    base64: some twenty times cheaper than JSON) and ``t`` (the text fields as JSON, only
    when any is set)."""
    packed = raw.get("s")
    if not packed:
        st = new_state()
    else:
        data = binascii.a2b_base64(packed)
        if len(data) == _PACK.size:
            st = dict(zip(NUMERIC, _PACK.unpack(data), strict=True))
        else:  # written before a field was added: the new ones are 0
            st = _ZERO.copy()
            st.update(zip(NUMERIC, struct.unpack(f"<{len(data) // 8}d", data), strict=False))
        text = raw.get("t")
        if text:
            cats, cp, lo = json.loads(text)
            st["cats"], st["cp"], st["lo"] = cats, cp, lo
            # unchanged text fields are written back as read (no JSON per customer): the
            # lists are only ever appended to or replaced
            st["_t"] = (cats, len(cats), cp, len(cp), lo, text)
        else:
            st["cats"], st["cp"], st["lo"] = [], [], ""
    st["v"] = float(raw.get("v") or 0)
    return st


def encode_flat(st: dict[str, Any]) -> list[str]:
    """:func:`encode` as the field, value, field, value ... list HSET takes."""
    packed = binascii.b2a_base64(_PACK.pack(*map(st.__getitem__, NUMERIC)),
                                 newline=False).decode()
    cats, cp, lo = st["cats"], st["cp"], st["lo"]
    c = st.get("_t")
    if c is not None and c[0] is cats and c[1] == len(cats) and c[2] is cp \
            and c[3] == len(cp) and c[4] == lo:
        text = c[5]
    elif cats or cp or lo:
        text = json.dumps([cats, cp, lo], separators=(",", ":"))
    else:
        text = ""
    return ["v", repr(float(st["v"])), "s", packed, "t", text,
            "seg", str(int(st["seg"])) if st["hasseg"] else "", "last", repr(st["last"])]


def encode(st: dict[str, Any]) -> dict[str, str]:
    """The hash fields: ``v``, ``s``, ``t`` and, readable for people and the API, ``seg``
    (online segment id, empty when none) and ``last`` (newest event time)."""
    flat = encode_flat(st)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


@dataclass
class Outcome:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # changed customers
    triggers: list[Trigger] = field(default_factory=list)
    schedule: dict[str, float] = field(default_factory=dict)  # timer member -> due
    cancel: set[str] = field(default_factory=set)
    fired: list[str] = field(default_factory=list)  # Redis timers consumed


def member(rule: str, key: str) -> str:
    return f"{rule}|{key}"


class Processor:
    """Applies the rules; holds nothing between batches but the configuration and the
    workspace reference."""

    def __init__(self, cfg: RealtimeConfig, ref: Reference, *, session_timeout: float,
                 churn_threshold: float, clv_period: str = "day") -> None:
        self.cfg, self.ref = cfg, ref
        r = cfg.rules
        self.timeout = session_timeout
        self.cart_after = r.abandoned_cart.after.total_seconds()
        self.add_types = set(r.abandoned_cart.add_types)
        self.cancel_types = set(r.abandoned_cart.cancel_types)
        self.view_types = set(r.high_value_views.view_types)
        self.churn_threshold = r.churn_risk.threshold or churn_threshold
        self.period = 7 * 86_400.0 if clv_period == "week" else 86_400.0
        self.churn_model: Any = None
        self.unit = 7 * 86_400.0
        if r.churn_risk.enabled and ref.clv:
            # scikit-learn and SciPy (a second to import) only with churn risk: tribes
            # webhooks and triggers reach this module too
            from tribes.models import models_of

            self.churn_model = models_of(ref.clv)[0]
            self.unit = UNIT_SECONDS.get(str(ref.clv.get("time_unit", "week")), self.unit)
            rows = ref.clv_rows
            self._clv_index: dict[str, int] = ({} if rows is None else
                                               {k: i for i, k in
                                                enumerate(rows["customer_key"])})
            if rows is not None and len(rows):
                # per customer, as epoch seconds: first and last transaction, and as_of
                as_of = np.array([t.timestamp() for t in rows["as_of"]], dtype=float)
                self._clv_x = rows["frequency"].to_numpy(dtype=float)
                self._clv_first = as_of - rows["T"].to_numpy(dtype=float) * self.unit
                self._clv_last = self._clv_first + rows["recency"].to_numpy(
                    dtype=float) * self.unit
                self._clv_as_of = as_of
        self._clv_due: np.ndarray | None = None
        self._crossings: dict[tuple[float, float], float] = {}  # see churn_due
        self.assign_online = r.segment_change.enabled and online.can_assign(ref)
        # customers erased since the reference was read (the stream's Redis set)
        self.blocked: set[str] = set()

    def allowed(self, key: str) -> bool:
        return key not in self.blocked and self.ref.allowed(key)

    # ------------------------------------------------------------------ batch
    def process(self, events: list[StreamEvent], states: dict[str, dict[str, Any]],
                due: list[tuple[str, float]], watermark: float) -> Outcome:
        """Apply ``events`` (of customers in ``states``, which is updated in place) and the
        timers ``due`` (from the store, due at or before ``watermark``). Timers fire up
        to the watermark only, so an event stamped ahead of the others (a device's clock
        is off; ingest admits up to ``future_tolerance``) fires nobody's timer early."""
        out = Outcome()
        heap = [(score, m, True) for m, score in due]
        heapq.heapify(heap)
        live: dict[str, float] = {m: s for m, s in due}  # member -> due of pending timers
        touched: dict[str, tuple[float, str]] = {}  # customer -> newest event, message
        ref = self.ref
        for ev in sorted(events, key=lambda e: (e.ts, e.event_id)):
            self._fire_until(min(ev.ts, watermark), heap, live, states, out, strict=True)
            key = ref.customer_key(ev.ids)
            if not self.allowed(key):
                continue
            st = states.setdefault(key, new_state())
            self._apply(ev, key, st, out, live, heap)
            touched[key] = (ev.ts, ev.msg_id)
        self._fire_until(watermark, heap, live, states, out, strict=False)
        if self.assign_online and touched:
            self._reassign(touched, states, out)
        for key in touched:
            out.states[key] = states[key]
        return out

    def _fire_until(self, t: float, heap: list[tuple[float, str, bool]],
                    live: dict[str, float], states: dict[str, dict[str, Any]], out: Outcome,
                    *, strict: bool) -> None:
        while heap and (heap[0][0] < t or (not strict and heap[0][0] <= t)):
            due, m, stored = heapq.heappop(heap)
            if live.get(m) != due:
                continue  # rescheduled or cancelled since
            del live[m]
            if stored:
                out.fired.append(m)
            else:  # scheduled in this batch: an older entry may still be stored
                out.cancel.add(m)
            out.schedule.pop(m, None)
            rule, key = m.split("|", 1)
            if not self.allowed(key):
                continue
            st = states.get(key)
            if st is None and rule == CHURN and key in getattr(self, "_clv_index", {}):
                st = states[key] = new_state()  # seeded, never seen by the stream
                self._init(key, st, due)
            if st is None:
                continue
            if rule == CART and st["cart"] and abs(st["cart"] + self.cart_after - due) < 1e-3:
                self._emit(out, "trigger.abandoned_cart", key, due, st,
                           f"{m}@{due:.3f}",
                           {"cart_at": st["cart"], "items": int(st["ci"]),
                            "value": round(st["cv"], 2), "products": st["cp"],
                            "minutes": self.cart_after / 60})
                st["cart"], st["ci"], st["cv"], st["cp"] = 0.0, 0.0, 0.0, []
            elif rule == CHURN and abs(st["churn"] - due) < 1e-3 and not st["cf"]:
                p = self._p_alive(st, due)
                self._emit(out, "trigger.churn_risk", key, due, st, f"{m}@{due:.3f}",
                           {"p_alive": round(p, 4), "threshold": self.churn_threshold,
                            "last_purchase_at": st["clast"]})
                st["cf"], st["churn"] = 1.0, 0.0
            out.states[key] = st

    def _schedule(self, m: str, due: float, live: dict[str, float], out: Outcome,
                  heap: list[tuple[float, str, bool]]) -> None:
        live[m] = due
        out.schedule[m] = due
        out.cancel.discard(m)
        heapq.heappush(heap, (due, m, False))

    def _cancel(self, m: str, live: dict[str, float], out: Outcome) -> None:
        live.pop(m, None)
        out.schedule.pop(m, None)
        out.cancel.add(m)

    # ------------------------------------------------------------------ one event
    def _init(self, key: str, st: dict[str, Any], ts: float) -> None:
        ref = self.ref
        b = ref.base_row(key)
        if b is not None and ref.as_of is not None:
            st["first"] = ref.as_of - (b.get("tenure_days") or 0.0) * 86_400.0
            st["last"] = ref.as_of - (b.get("recency_days") or 0.0) * 86_400.0
            # the batch's last session, counted in the batch features, is open
            st["sl"] = st["ss"] = st["last"]
            st["sn"], st["sb"] = 1.0, 1.0
        else:
            st["first"] = st["last"] = ts
        seg = ref.batch_segment.get(key)
        if seg is not None:
            st["seg"], st["hasseg"] = float(seg), 1.0
        if self.churn_model is not None:
            i = self._clv_index.get(key)
            if i is not None:
                st["cfirst"] = float(self._clv_first[i])
                st["clast"] = float(self._clv_last[i])
                st["cx"] = float(self._clv_x[i])
                # the crossing the seeded timer (churn_schedule) was set for
                due = float(self._seeded_dues()[i])
                st["churn"] = due if due == due else 0.0

    def _apply(self, ev: StreamEvent, key: str, st: dict[str, Any], out: Outcome,
               live: dict[str, float], heap: list[tuple[float, str, bool]]) -> None:
        r = self.cfg.rules
        if not st["first"]:
            self._init(key, st, ev.ts)
        counted = self.ref.as_of is None or key not in self.ref.base_index or \
            ev.ts > self.ref.as_of
        new_session = st["sn"] == 0 or ev.ts > st["sl"] + self.timeout
        if new_session and st["sn"] and not st["sb"]:
            # close the previous (streamed) session
            st["nd"] += max(st["sl"] - st["ss"], 0.0)
            if st["sc"]:
                st["ncs"] += 1
                st["nas"] += 0 if st["sp"] else 1
        if new_session:
            st["ss"] = st["sl"] = ev.ts
            for f in ("sn", "sv", "so", "sh", "sc", "sp", "sb"):
                st[f] = 0.0
            if counted:
                st["ns"] += 1
        st["sn"] += 1
        st["sl"] = max(st["sl"], ev.ts)
        st["last"] = max(st["last"], ev.ts)
        etype = ev.event_type
        if counted:
            st["ne"] += 1
            if ev.category and ev.category not in st["cats"] and \
                    len(st["cats"]) < MAX_CATEGORIES:
                st["cats"].append(ev.category)
        seg = int(st["seg"]) if st["hasseg"] else None
        if new_session and r.session_offer.enabled:
            offer = self.ref.offer_for(seg, r.session_offer.offers)
            if offer is not None and not st["so"]:
                st["so"] = 1
                self._emit(out, "trigger.session_offer", key, ev.ts, st, ev.event_id,
                           {"offer": offer, "segment": self.ref.segment_name(seg)},
                           source_msg=ev.msg_id)
        if etype in self.add_types:
            st["sc"] = 1
            if r.abandoned_cart.enabled:
                st["cart"] = ev.ts
                st["ci"] += 1
                st["cv"] += (ev.price or 0.0)
                if ev.product_id and len(st["cp"]) < MAX_CART_PRODUCTS:
                    st["cp"].append(ev.product_id)
                self._schedule(member(CART, key), ev.ts + self.cart_after, live, out, heap)
        elif etype in self.cancel_types and st["cart"] and ev.ts >= st["cart"]:
            st["cart"], st["ci"], st["cv"], st["cp"] = 0.0, 0.0, 0.0, []
            self._cancel(member(CART, key), live, out)
        if etype == "purchase":
            st["sp"] = 1
            if counted and (not ev.order_id or ev.order_id != st["lo"]):
                st["no"] += 1
                st["lo"] = ev.order_id or ""
            if counted:
                st["nm"] += ev.amount or 0.0
            self._purchase_churn(key, st, ev.ts, live, out, heap)
        if ev.source == "support" and counted:
            st["nsup"] += 1
        if (etype in self.view_types and r.high_value_views.enabled and not st["sh"]
                and (ev.price or 0.0) >= r.high_value_views.min_price):
            st["sv"] += 1
            if st["sv"] >= r.high_value_views.min_views:
                st["sh"] = 1
                self._emit(out, "trigger.high_value_views", key, ev.ts, st, ev.event_id,
                           {"views": int(st["sv"]), "min_price": r.high_value_views.min_price,
                            "product_id": ev.product_id}, source_msg=ev.msg_id)

    # ------------------------------------------------------------------ churn
    def _p_alive(self, st: dict[str, Any], at: float | np.ndarray) -> Any:
        """P(alive) of the customer at time(s) ``at`` (no purchase meanwhile)."""
        times = np.atleast_1d(np.asarray(at, dtype=float))
        big_t = np.maximum(times - st["cfirst"], 0.0) / self.unit
        tx = np.full(len(times), max(st["clast"] - st["cfirst"], 0.0) / self.unit)
        p = self.churn_model.p_alive(np.full(len(times), st["cx"]), tx, big_t)
        return float(p[0]) if np.ndim(at) == 0 else p

    def _purchase_churn(self, key: str, st: dict[str, Any], ts: float,
                        live: dict[str, float], out: Outcome,
                        heap: list[tuple[float, str, bool]]) -> None:
        if self.churn_model is None:
            return
        period = math.floor(ts / self.period) * self.period
        if not st["cfirst"]:
            st["cfirst"] = st["clast"] = period
        elif period > st["clast"]:
            st["cx"] += 1
            st["clast"] = period
        st["cf"] = 0.0
        due = self.churn_due(st, ts)
        m = member(CHURN, key)
        if due is None:
            st["churn"] = 0.0
            self._cancel(m, live, out)
        else:
            st["churn"] = due
            self._schedule(m, due, live, out, heap)

    def churn_due(self, st: dict[str, Any], now: float) -> float | None:
        """When P(alive) will fall below the threshold without another purchase (None: not
        within ten years, or never, as with no repeat purchase under BG/NBD).

        P(alive) depends on the purchase count and the times of the last purchase and of
        now since the first only, and purchase times are whole periods: the age at which
        it crosses is kept per (count, last purchase age), so a purchase costs a lookup,
        not a search."""
        x = st["cx"]
        tx = max(st["clast"] - st["cfirst"], 0.0)
        crossing = self._crossings.get((x, tx))
        if crossing is None:
            crossing = float(self.churn_due_many(np.array([x]), np.array([0.0]),
                                                 np.array([tx]), np.array([tx]))[0])
            if len(self._crossings) < 100_000:
                self._crossings[(x, tx)] = crossing
        if crossing != crossing:  # NaN: not within ten years of the last purchase
            return None
        due = round(max(st["cfirst"] + crossing, now), 3)
        return None if due > now + TEN_YEARS else due

    def churn_due_many(self, x: np.ndarray, first: np.ndarray, last: np.ndarray,
                       now: np.ndarray) -> np.ndarray:
        """:meth:`churn_due` of many customers at once (NaN: never)."""
        # P(alive) falls with time: find the first point of a grid below the threshold,
        # then refine between it and the one before, four times
        m = len(x)
        grid = now[:, None] + _STEPS[None, :]
        tx = np.maximum(last - first, 0.0) / self.unit
        rows = np.arange(m)
        found = np.ones(m, dtype=bool)
        for _ in range(4):
            k = grid.shape[1]
            big_t = np.maximum(grid - first[:, None], 0.0) / self.unit
            p = self.churn_model.p_alive(np.repeat(x, k), np.repeat(tx, k),
                                         big_t.ravel()).reshape(m, k)
            below = p < self.churn_threshold
            found &= below.any(axis=1)
            j = np.argmax(below, axis=1)
            at_start = j == 0
            lo = grid[rows, np.maximum(j - 1, 0)]
            hi = grid[rows, j]
            lo = np.where(at_start, hi, lo)
            grid = lo[:, None] + (hi - lo)[:, None] * _FRACTIONS[None, :]
        due = np.round(grid[:, -1], 3)
        return np.where(found, due, np.nan)

    def churn_schedule(self, after: float) -> dict[str, float]:
        """Churn timers of every customer of the CLV fit whose P(alive) will cross the
        threshold after ``after`` (those already below are not scheduled: the batch
        scores flag them)."""
        if self.churn_model is None or not self._clv_index:
            return {}
        due = self._seeded_dues()
        return {member(CHURN, k): float(d)
                for k, d in zip(self._clv_index, due, strict=True)
                if d == d and d > after and self.allowed(k)}

    def _seeded_dues(self) -> np.ndarray:
        """Crossing times of every customer of the CLV fit from its end on (NaN: never, or
        below the threshold already at the fit's end: the batch scores flag those)."""
        if self._clv_due is None:
            due = self.churn_due_many(self._clv_x, self._clv_first, self._clv_last,
                                      self._clv_as_of)
            self._clv_due = np.where(due > np.round(self._clv_as_of, 3), due, np.nan)
        return self._clv_due

    # ------------------------------------------------------------------ segments
    def _reassign(self, touched: dict[str, tuple[float, str]],
                  states: dict[str, dict[str, Any]], out: Outcome) -> None:
        keys = list(touched)
        now = np.fromiter((touched[k][0] for k in keys), dtype=float, count=len(keys))
        segs = online.assign(self.ref, keys, [states[k] for k in keys], now)
        for key, seg in zip(keys, segs, strict=True):
            st = states[key]
            old = int(st["seg"]) if st["hasseg"] else None
            if old == seg:
                continue
            at, msg = touched[key]
            anchor = f"{old}>{seg}@{at:.3f}"
            if old is not None:
                self._emit(out, "segment.exited", key, at, st, anchor,
                           {"segment_id": old, "segment": self.ref.segment_name(old),
                            "to": seg}, segment=old, source_msg=msg)
            st["seg"], st["hasseg"] = float(seg), 1.0
            self._emit(out, "segment.entered", key, at, st, anchor,
                       {"segment_id": seg, "segment": self.ref.segment_name(seg),
                        "from": old, "version": self.ref.version}, segment=seg,
                       source_msg=msg)

    def _emit(self, out: Outcome, kind: str, key: str, at: float, st: dict[str, Any],
              anchor: str, data: dict[str, Any], *, source_msg: str = "",
              segment: int | None = None) -> None:
        seg = segment if segment is not None else (int(st["seg"]) if st["hasseg"] else None)
        out.triggers.append(Trigger(kind=kind, customer_key=key, at=at,
                                    trigger_id=trigger_id(kind, key, anchor), data=data,
                                    segment_id=seg, source_msg=source_msg))
