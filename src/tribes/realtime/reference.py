"""What the stream needs from the workspace, read once and kept in memory.

Identities (every id -> its customer), the active segment version (transform, model,
names, persona actions), each customer's batch features and segment, consent choices,
erased people and the CLV fit. Reloaded when the workspace changes: every change writes
an audit record, so the audit head's change number tells when (as the service's index).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from tribes.errors import TribesError
from tribes.privacy import ANALYTICS, last_derived_change, latest_consents
from tribes.settings import RunSettings
from tribes.stats import Transform
from tribes.store import active_version, get_run, keyed_consents, members, open_engine
from tribes.workspace import Workspace

log = logging.getLogger(__name__)
FEATURES_TABLE = "customer_features"
# features the online state can update (see online.py); others keep their batch value
BASE_COLUMNS = ("recency_days", "tenure_days", "frequency", "monetary", "n_events",
                "n_sessions", "avg_session_duration_s", "distinct_categories",
                "cart_abandonment_rate", "support_contacts")


@dataclass(frozen=True)
class Persona:
    segment_id: int
    name: str
    action: str
    campaign: str
    description: str


@dataclass
class Reference:
    """Read-only during a batch; replaced as a whole on reload."""

    ids: dict[str, str] = field(default_factory=dict)  # pseudonymized id -> customer_key
    version: int | None = None
    method: str | None = None
    transform: Transform | None = None
    model: dict[str, Any] = field(default_factory=dict)
    segments: dict[int, str] = field(default_factory=dict)  # segment id -> name
    personas: dict[int, Persona] = field(default_factory=dict)
    batch_segment: dict[str, int] = field(default_factory=dict)
    base_index: dict[str, int] = field(default_factory=dict)
    base: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    base_columns: tuple[str, ...] = ()
    as_of: float | None = None  # epoch seconds of the features' as_of
    consent_mode: str = "opt-out"
    consent_ids: frozenset[str] = frozenset()  # refusals (opt-out) or grants (opt-in)
    erased: frozenset[str] = frozenset()  # pseudonymized ids
    clv: dict[str, Any] | None = None  # the fit report (model, params, time unit)
    clv_rows: pd.DataFrame | None = None  # customer_key, frequency, recency, T, as_of
    change: int = -1

    def customer_key(self, ids: tuple[tuple[str, str], ...]) -> str:
        """The customer of an event (DESIGN §5: customer_id, else anonymous, else device
        id); a new id is a new customer keyed by it (``anon:`` for non-customer ids)."""
        for col, pid in ids:
            key = self.ids.get(pid)
            if key is not None:
                return key
            return pid if col == "customer_id" else "anon:" + pid
        raise ValueError("an event without ids")

    def allowed(self, key: str) -> bool:
        """Consent: may triggers and segments be computed for this customer?"""
        if key in self.erased or key.removeprefix("anon:") in self.erased:
            return False
        if self.consent_mode == "opt-in":
            return key in self.consent_ids
        return key not in self.consent_ids

    def base_row(self, key: str) -> dict[str, float] | None:
        i = self.base_index.get(key)
        if i is None:
            return None
        return dict(zip(self.base_columns, self.base[i].tolist(), strict=True))

    def segment_name(self, segment_id: int | None) -> str | None:
        if segment_id is None:
            return None
        p = self.personas.get(segment_id)
        return p.name if p else self.segments.get(segment_id, f"Segment {segment_id}")

    def offer_for(self, segment_id: int | None, offers: dict[str, str]) -> str | None:
        if segment_id is None or not offers:
            return None
        hit = offers.get(str(segment_id))
        if hit is None:
            name = self.segment_name(segment_id)
            hit = offers.get(name) if name else None
        return hit


def _epoch(v: Any) -> float | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return float(pd.Timestamp(v).timestamp())


def load(ws: Workspace, settings: RunSettings, *, wait_s: float = 60.0) -> Reference:
    """Read everything the stream needs from the workspace (a few queries), for a run
    with ``settings`` (its consent mode); while another process writes the database (the
    landing of another consumer), wait up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _load(ws, settings)
        except TribesError as exc:
            if exc.code != "E_LOCKED" or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _load(ws: Workspace, settings: RunSettings) -> Reference:
    # scikit-learn and SciPy (a second to import) when the stream starts, not in the commands
    # that only reach this module (tribes webhooks, triggers)
    from tribes.models import last_fit

    started = time.perf_counter()
    ref = Reference(consent_mode=settings.consent_mode,
                    change=last_derived_change(ws.path))
    with open_engine(ws, read_only=True) as engine:
        ids = engine.execute(engine.table("identities").select("id", "customer_key"))
        ref.ids = dict(zip(ids["id"].astype(str), ids["customer_key"].astype(str),
                           strict=True))
        tomb = engine.execute(engine.table("tombstones").select("id"))
        erased = set(tomb["id"].astype(str))
        ref.erased = frozenset(erased | {ref.ids[i] for i in erased if i in ref.ids})
        c = keyed_consents(engine)  # a merged customer's choices are under its key
        latest = latest_consents(c.filter(c.purpose == ANALYTICS))
        want = latest.granted if ref.consent_mode == "opt-in" else ~latest.granted
        choice = engine.execute(latest.filter(want).select("customer_id"))
        ref.consent_ids = frozenset(choice["customer_id"].astype(str))
        version = active_version(engine)
        if version is not None:
            run = get_run(engine, version)
            ref.version, ref.method = version, str(run["method"])
            if run.get("transform"):
                ref.transform = Transform.from_dict(run["transform"])
            ref.model = dict(run.get("model") or {})
            ref.segments = {int(s["segment_id"]): str(s["name"]) for s in run["segments"]}
            p = engine.table("personas")
            for r in engine.execute(p.filter(p.version == version)).itertuples():
                ref.personas[int(r.segment_id)] = Persona(
                    int(r.segment_id), str(r.name), str(r.action or ""),
                    str(r.campaign or ""), str(r.description or ""))
            seg = engine.execute(members(engine, version))
            ref.batch_segment = dict(zip(seg["a_key"].astype(str),
                                         seg["segment_id"].astype(int), strict=True))
            snapshot = run.get("snapshot") or {}
            ref.as_of = _epoch(snapshot.get("as_of"))
        if engine.has_table(FEATURES_TABLE):
            t = engine.table(FEATURES_TABLE)
            wanted = list(dict.fromkeys([*BASE_COLUMNS, *(ref.transform.features
                                                         if ref.transform else ())]))
            cols = [c for c in wanted if c in t.columns]
            df = engine.execute(t.select("customer_key", *cols))
            ref.base_columns = tuple(cols)
            ref.base = df[cols].to_numpy(dtype=float, na_value=np.nan) if cols else np.zeros(
                (len(df), 0))
            ref.base_index = {k: i for i, k in enumerate(df["customer_key"].astype(str))}
            if "as_of" in t.columns:
                # the base rows are as of the features' own as_of, which is later than
                # the version's once its memberships were refreshed on newer features
                features_as_of = _epoch(engine.scalar(t.as_of.max()))
                if features_as_of is not None:
                    ref.as_of = features_as_of
        try:
            ref.clv = last_fit(engine)
        except Exception:
            ref.clv = None
        if ref.clv is not None:
            t = engine.table("clv")
            ref.clv_rows = engine.execute(t.select("customer_key", "frequency", "recency",
                                                   "T", "as_of"))
    log.info("stream reference: %d ids, %d customers with features, version %s, in %.2fs",
             len(ref.ids), len(ref.base_index), ref.version, time.perf_counter() - started)
    return ref

