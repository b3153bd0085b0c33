"""The features stage: the ``customer_features`` table as of a point in time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine, md5_hex
from tribes.errors import InputError
from tribes.features.build import (
    MixColumns,
    customer_state,
    features_from_state,
    mix_columns,
    scored_features,
)
from tribes.features.composite import Composite, fit_composite
from tribes.features.definitions import (
    CHANNEL_PREFIX,
    DEVICE_PREFIX,
    FEATURES,
    composite_features,
    engagement_weights,
)
from tribes.features.history import record_snapshot
from tribes.prep import last_prep, prep_params, run_prep, touched_after
from tribes.privacy import consent_filter
from tribes.settings import RunSettings
from tribes.store import (
    events_fingerprint,
    is_current,
    keyed_consents,
    last_run,
    list_rules,
    new_run_id,
    record_run,
)
from tribes.workspace import RunContext

log = logging.getLogger(__name__)

STAGE = "features"
FEATURES_TABLE = "customer_features"
# per customer, what the features are made of that does not move with the clock
# (features.build.customer_state), as of the newest events; an append replaces the rows
# of the customers it touched
STATE_TABLE = "customer_state"
_TMP = ("_ft_fresh", "_ft_state", "_ft_base", "_ft_scored")


@dataclass(frozen=True)
class FeaturesReport:
    """What a features run computed."""

    run_id: str
    as_of: datetime
    session_timeout: str
    customers: int
    known_customers: int
    excluded_by_consent: int
    columns: list[str]
    composite: dict[str, Any]
    prep_rerun: bool
    seconds: float
    # the prep run whose sessions customer_state reflects (None: not stored, a past
    # snapshot) and the share columns it counts
    state_of: str | None = None
    mixes: list[dict[str, Any]] | None = None
    recomputed: int | None = None  # customers recomputed by an incremental run
    snapshot: dict[str, Any] | None = None  # the dated snapshot kept (features.history)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "as_of": self.as_of.isoformat()}


def parse_as_of(text: str) -> datetime:
    """An ISO date (its last microsecond, UTC) or date-time (naive = UTC)."""
    try:
        if len(text.strip()) == 10:
            d = date.fromisoformat(text.strip())
            return datetime.combine(d, dtime.max, tzinfo=UTC)
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--as-of '{text}' is not an ISO date or date-time "
                         "(e.g. 2026-06-30 or 2026-06-30T12:00:00Z)", code="E_AS_OF") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def run_features(ctx: RunContext, *, progress: Callable[[str], None] | None = None
                 ) -> FeaturesReport:
    """Compute and store ``customer_features`` (replacing the previous table).

    Runs prep first, with the same settings, when the events changed since the last
    prep, it was run with another session timeout, or identity rules changed.
    ``settings.as_of`` defaults to the newest event; only events up to it count, so past
    snapshots can be rebuilt.
    """
    say = progress or (lambda step: None)
    started_perf, started = time.perf_counter(), datetime.now(UTC)
    ws, engine, settings = ctx.ws, ctx.engine, ctx.settings
    cfg = ws.config.features
    as_of = settings.as_of

    fingerprint = events_fingerprint(engine)
    if fingerprint.rows == 0:
        raise InputError("no events in the workspace; ingest some first: "
                         "tribes ingest <files> --source web", code="E_NO_EVENTS")
    prep = last_prep(engine)
    prep_rerun = not is_current(prep, fingerprint) or (
        (prep or {}).get("params") != prep_params(settings, list_rules(engine)))
    if prep_rerun:
        log.info("events, settings or identity rules changed since the last prep; running "
                 "prep first")
        say("prep (events, settings or identity rules changed since the last prep)")
        run_prep(ctx, progress=lambda s: say(f"prep: {s}"))
        prep = last_prep(engine)

    events = engine.table("events")
    newest = engine.scalar(events.ts.max()).to_pydatetime()
    if as_of is None:
        as_of = newest
    as_of_lit = ibis.literal(as_of, type="timestamp('UTC')")
    say("choosing channel and device columns")
    upto = events.filter(events.ts <= as_of_lit)
    mixes = [_mix(engine, upto, col, prefix, cfg.mix_values)
             for col, prefix in (("channel", CHANNEL_PREFIX), ("device", DEVICE_PREFIX))]

    cut = as_of < newest
    touched = _touched_since(engine, prep, last_features(engine), mixes, cut)
    identities, sessions = engine.table("identities"), engine.table("sessions")
    try:
        if touched is not None:
            say("aggregating the events of the customers the new events touched")
            fresh = engine.create_temp("_ft_fresh", customer_state(
                events, identities, sessions, as_of=as_of, mixes=mixes, keys=touched))
            stored_state = engine.table(STATE_TABLE)
            state = engine.create_temp("_ft_state", ibis.union(
                stored_state.anti_join(touched, "customer_key"),
                fresh.select(*stored_state.columns)))
        else:
            say("aggregating events per customer")
            # no ordering here (prep ordered the events into sessions): plain aggregates,
            # which the engine spills to disk under its memory limit, so one pass at any
            # size
            state = engine.create_temp("_ft_state", customer_state(
                events, identities, sessions, as_of=as_of, mixes=mixes, cut=cut))
        base = features_from_state(state, as_of=as_of, mixes=mixes)
        all_base = engine.create_temp("_ft_base", base)
        n_all = int(engine.scalar(all_base.count()))
        if n_all == 0:
            raise InputError(f"no events up to {as_of.isoformat()}; choose a later --as-of",
                             code="E_NO_EVENTS")
        allowed = consent_filter(all_base, "customer_key", keyed_consents(engine),
                                 settings.consent_mode)
        say("scoring (engagement, RFM)")
        scored = engine.create_temp("_ft_scored",
                                    scored_features(allowed, cfg.engagement_weights))
        n = int(engine.scalar(scored.count()))
        if n == 0:
            raise InputError(
                f"all {n_all:,} customers are excluded by consent (privacy.consent_mode = "
                f"'{settings.consent_mode}'); nothing to compute",
                code="E_NO_CONSENT")
        say("fitting the composite index")
        composite = _fit(engine, scored, composite_features(cfg.composite), cfg.sample_size)
        final = scored.mutate(composite_index=composite.expr(scored), as_of=as_of_lit)
        final = final.select(*_column_order(final.columns))
        run_id = new_run_id(STAGE, started)
        with engine.transaction():
            say("storing")
            if touched is not None:
                stored_state = engine.table(STATE_TABLE)
                engine.delete_where(STATE_TABLE,
                                    stored_state.customer_key.isin(touched.customer_key))
                engine.insert(STATE_TABLE, engine.table("_ft_fresh").select(
                    *stored_state.columns))
            elif not cut:
                engine.replace_table(STATE_TABLE, state)
            stored = engine.replace_table(FEATURES_TABLE, final)
            known = int(engine.scalar(stored.known.cast("int64").sum()))
            snapshot = None
            if not cut and cfg.snapshots:
                say("keeping the dated snapshot")
                snapshot = record_snapshot(
                    engine, engine.table(STATE_TABLE), as_of=as_of, run_id=run_id,
                    composite=composite.as_dict(), weights=cfg.engagement_weights).as_dict()
            report = FeaturesReport(
                run_id=run_id, as_of=as_of, session_timeout=settings.timeout_text, customers=n,
                known_customers=known, excluded_by_consent=n_all - n,
                columns=[c for c in stored.columns if c not in ("customer_key", "as_of")],
                composite=composite.as_dict(), prep_rerun=prep_rerun,
                seconds=round(time.perf_counter() - started_perf, 3),
                state_of=None if cut else (prep or {}).get("run_id"),
                mixes=None if cut else [_mix_dict(m) for m in mixes],
                recomputed=(None if touched is None
                            else int(engine.scalar(engine.table("_ft_fresh").count()))),
                snapshot=snapshot,
            )
            record_run(engine, run_id=run_id, stage=STAGE, started_at=started,
                       fingerprint=fingerprint,
                       params=features_params(settings, as_of, cfg.model_dump()),
                       report=report.as_dict())
    finally:
        for name in _TMP:
            engine.drop_temp(name)
    log.info("features: %d customers as of %s", n, as_of)
    return report


def _mix(engine: Engine, events: ir.Table, column: str, prefix: str, top: int) -> MixColumns:
    counts = engine.execute(mix_columns(events, column, prefix, top))
    values = tuple(str(v) for v in counts["value"].head(top))
    return MixColumns(column=column, prefix=prefix, values=values,
                      has_other=len(counts) > top)


def _mix_dict(mix: MixColumns) -> dict[str, Any]:
    """The share columns as customer_state counts them (their order does not matter)."""
    return {"column": mix.column, "names": dict(sorted(mix.names().items())),
            "has_other": mix.has_other}


def _touched_since(engine: Engine, prep: dict[str, Any] | None,
                   last: dict[str, Any] | None, mixes: list[MixColumns], cut: bool
                   ) -> ir.Table | None:
    """The customers to recompute when only some changed since the last features run
    (``prep_touched``), or None when every customer is: the stored state must reflect
    the prep just before the last one, which was an append (prep.incremental), with the
    same share columns, and this run is not a past snapshot."""
    if cut or last is None or not engine.has_table(STATE_TABLE):
        return None
    rep = last.get("report") or {}
    if rep.get("mixes") != [_mix_dict(m) for m in mixes]:
        return None
    return touched_after(engine, prep, rep.get("state_of"))


def _fit(engine: Engine, scored: ir.Table, features: list[str], sample_size: int) -> Composite:
    unknown = [f for f in features if f not in scored.columns]
    if unknown:
        raise InputError(f"[features] composite names unknown features {unknown}; "
                         f"choose among {', '.join(f.name for f in FEATURES[:16])}",
                         code="E_CONFIG")
    # a deterministic sample: the same customers every run
    sample = scored.order_by(md5_hex(scored.customer_key)).limit(sample_size)
    df = engine.execute(sample.select(*features))
    return fit_composite(df, features)


def _column_order(columns: list[str]) -> list[str]:
    fixed = ["customer_key", "known"] + [f.name for f in FEATURES]
    mix = [c for c in columns if c.startswith((CHANNEL_PREFIX, DEVICE_PREFIX))]
    rest = [c for c in columns if c not in fixed and c not in mix]
    return [c for c in fixed if c in columns] + mix + rest


def features_params(settings: RunSettings, as_of: datetime, config: dict[str, Any]
                    ) -> dict[str, Any]:
    """The parameters a features run is stored with (and compared by, in ``tribes run``):
    the normalized session timeout, so ``30m`` and ``1800s`` are one setting, and the
    feature sets ``[features]`` leaves to the defaults spelled out, as they were used."""
    used = {"composite": composite_features(config.get("composite")),
            "engagement_weights": engagement_weights(config.get("engagement_weights"))}
    return {"as_of": as_of.isoformat(), "session_timeout": settings.timeout_text,
            "consent_mode": settings.consent_mode, **config, **used}


def last_features(engine: Engine) -> dict[str, Any] | None:
    return last_run(engine, STAGE)
