"""Schemas of the workspace tables (DESIGN §3), created on first use."""

from __future__ import annotations

import ibis

from tribes.engine import Engine

TS = "timestamp('UTC')"

EVENTS = ibis.schema(
    {
        "event_id": "string",
        "ts": TS,
        "event_type": "string",
        "customer_id": "string",
        "anonymous_id": "string",
        "device_id": "string",
        "session_id": "string",
        "source": "string",
        "channel": "string",
        "device": "string",
        "country": "string",
        "region": "string",
        "city": "string",
        "product_id": "string",
        "category": "string",
        "order_id": "string",
        "amount": "float64",
        "quantity": "int64",
        "properties": "string",
        "ingested_at": TS,
        "batch_id": "string",
    }
)

QUARANTINE = ibis.schema(
    {
        "batch_id": "string",
        "kind": "string",
        "source": "string",
        "file": "string",
        "reason": "string",
        "message": "string",
        "raw": "string",
        "quarantined_at": TS,
        # what replay needs (tribes.ingest.replay): the source record by its column names,
        # ids and personal data as their pseudonyms (JSON); the source columns holding
        # pseudonyms (JSON list); the record's key (an event's derived id, a profile's
        # record hash), as ingesting the record where it was read gives it
        "record": "string",
        "hashed": "string",
        "record_key": "string",
        # open (null), replayed or dropped; when, by which batch or why
        "status": "string",
        "resolved_at": TS,
        "resolved_by": "string",
        "note": "string",
    }
)

BATCHES = ibis.schema(
    {
        "batch_id": "string",
        "kind": "string",
        "source": "string",
        "files": "string",
        "started_at": TS,
        "finished_at": TS,
        "rows_read": "int64",
        "loaded": "int64",
        "duplicates": "int64",
        "quarantined": "int64",
        "reasons": "string",
        "mapping": "string",
        "missing": "string",
        "options": "string",
        # rows of this batch that re-read quarantined rows (a replay, a fixed export):
        # rows_read - replayed = loaded + duplicates + open quarantine + dropped, summed
        "replayed": "int64",
    }
)

CUSTOMERS = ibis.schema(
    {
        "customer_id": "string",
        "signup_ts": TS,
        "country": "string",
        "region": "string",
        "city": "string",
        "age_band": "string",
        "gender": "string",
        "properties": "string",
        "record_hash": "string",
        "ingested_at": TS,
        "batch_id": "string",
    }
)

CONSENTS = ibis.schema(
    {
        "consent_id": "string",
        "customer_id": "string",
        "purpose": "string",
        "granted": "boolean",
        "ts": TS,
        "ingested_at": TS,
        "batch_id": "string",
    }
)

IDENTITIES = ibis.schema(
    {"id": "string", "id_type": "string", "customer_key": "string", "status": "string"}
)
# identity repair (tribes identity): merge, split and block rules that every prep applies,
# in rule_id order; ids pseudonymized, never raw. merge: a and b name the two customers;
# split: b leaves the customer a names; block: a links nothing (b is null)
IDENTITY_RULES = ibis.schema({
    "rule_id": "int64", "action": "string", "a_type": "string", "a": "string",
    "b_type": "string", "b": "string", "note": "string", "created_at": TS,
    "created_by": "string", "undone_at": TS, "undone_by": "string",
})

# every distinct (customer_id, anonymous_id, device_id) seen on one event: the identity
# graph's input, kept so that prep after an append stitches only what the new ids touch
ID_TUPLES = ibis.schema(
    {"customer_id": "string", "anonymous_id": "string", "device_id": "string"}
)
# the customers whose sessions the last prep changed (empty after a full prep, which
# changed them all): what features recompute after an incremental prep. ``since``: their
# events from then on changed (null: all of them, the customer's ids changed)
PREP_TOUCHED = ibis.schema({"customer_key": "string", "since": TS})

# per customer and week (Monday, UTC) they were active: whether they bought, their
# purchase revenue and distinct orders; the weekly segment KPIs of monitoring are sums of
# it (tribes.monitor.spc), kept up to date like the sessions
CUSTOMER_WEEKS = ibis.schema({"customer_key": "string", "week": TS, "bought": "boolean",
                              "revenue": "float64", "orders": "array<string>"})

SESSIONS = ibis.schema(
    {
        "customer_key": "string",
        "session_id": "string",
        "session_seq": "int64",
        "start": TS,
        "end": TS,
        "duration_s": "float64",
        "n_events": "int64",
        "event_types": "array<string>",
        "has_add_to_cart": "boolean",
        "has_purchase": "boolean",
        "source": "string",
        "device": "string",
    }
)

# one row per stage run (prep, features): parameters, input fingerprint, report
STAGE_RUNS = ibis.schema(
    {
        "run_id": "string",
        "stage": "string",
        "started_at": TS,
        "finished_at": TS,
        "events_rows": "int64",
        "events_loaded_at": TS,
        "params": "string",
        "report": "string",
    }
)

SEGMENT_RUNS = ibis.schema({
    "version": "int64",
    "created_at": TS,
    "method": "string",
    "k": "int64",
    "params": "string",
    "features": "string",
    "transform": "string",
    "model": "string",
    "metrics": "string",
    "snapshot": "string",
    "segments": "string",
    "parent_version": "int64",
})
SEGMENT_ASSIGNMENTS = ibis.schema({
    "version": "int64", "customer_key": "string", "segment_id": "int64",
    "probability": "float64",
})
SEGMENT_ACTIVATIONS = ibis.schema({
    "version": "int64", "activated_at": TS, "action": "string", "previous": "int64",
})
# every refresh of a version's memberships with its own model (counts only, no customer):
# which features it read, what set it off (run, activate, rollback) and what changed
SEGMENT_REFRESHES = ibis.schema({
    "version": "int64", "refreshed_at": TS, "trigger": "string", "features_run": "string",
    "customers": "int64", "new": "int64", "moved": "int64", "left": "int64",
    "sizes": "string",
})
PERSONAS = ibis.schema({
    "version": "int64", "segment_id": "int64", "name": "string", "archetype": "string",
    "description": "string", "campaign": "string", "action": "string", "size": "int64",
    "share": "float64", "profile": "string", "created_at": TS,
})
# user overrides of persona texts by segment id (ids are stable across versions)
PERSONA_OVERRIDES = ibis.schema({
    "segment_id": "int64", "name": "string", "description": "string", "action": "string",
    "campaign": "string", "updated_at": TS,
})
# behavioral cohorts: the rule as written, and the members when it was last evaluated
COHORTS = ibis.schema({
    "name": "string", "rule": "string", "description": "string", "created_at": TS,
    "refreshed_at": TS, "as_of": TS, "n_customers": "int64",
})
COHORT_MEMBERS = ibis.schema({"cohort": "string", "customer_key": "string"})
# CLV scores of the newest `tribes clv score` (one row per purchaser)
CLV = ibis.schema({
    "customer_key": "string", "frequency": "int64", "recency": "float64", "T": "float64",
    "monetary": "float64", "p_alive": "float64", "churn_risk": "boolean",
    "expected_purchases": "float64", "expected_value": "float64", "clv": "float64",
    "model": "string", "horizon": "string", "as_of": TS, "fit_id": "string",
})
# churn risk now, from the model that validated best (tribes clv churn; one row per
# customer it scores)
CHURN_SCORES = ibis.schema({
    "customer_key": "string", "churn_probability": "float64", "churn_risk": "boolean",
    "model": "string", "auc": "float64", "days": "int64", "as_of": TS,
})
# erased people (tribes forget): their pseudonymized ids, so re-ingests cannot bring them back
TOMBSTONES = ibis.schema({"id": "string", "erased_at": TS})
# the exports index: every export written, and which customers each one contained
EXPORTS = ibis.schema({
    "export_id": "string", "what": "string", "path": "string", "format": "string",
    "rows": "int64", "created_at": TS,
})
EXPORT_MEMBERS = ibis.schema({"export_id": "string", "customer_key": "string"})
# webhook deliveries that failed every attempt (tribes webhooks replay sends them again)
WEBHOOK_DEADLETTERS = ibis.schema({
    "deadletter_id": "string", "webhook_id": "string", "url": "string",
    "trigger_id": "string", "type": "string", "customer_key": "string", "trigger": "string",
    "attempts": "int64", "last_error": "string", "failed_at": TS, "replayed_at": TS,
})
# breaches found by tribes monitor (and the checks on every ingest); acked closes one
ALERTS = ibis.schema({
    "alert_id": "int64", "created_at": TS, "kind": "string", "severity": "string",
    "subject": "string", "metric": "string", "value": "float64", "threshold": "float64",
    "message": "string", "detail": "string", "version": "int64", "acked_at": TS,
    "acked_by": "string", "note": "string",
})
# tribes activate: what each target holds now (as last delivered), every sync, and the
# removals an erasure owes a target (by pseudonymized id, as tombstones keep it)
ACTIVATION_STATE = ibis.schema({
    "target": "string", "customer_key": "string", "segment_id": "int64", "synced_at": TS,
})
ACTIVATION_SYNCS = ibis.schema({
    "sync_id": "string", "target": "string", "kind": "string", "started_at": TS,
    "finished_at": TS, "version": "int64", "segments": "string", "upserts": "int64",
    "removals": "int64", "batches": "int64", "delivered": "int64", "status": "string",
    "error": "string", "location": "string",
})
ACTIVATION_REMOVALS = ibis.schema({
    "target": "string", "id": "string", "segment_id": "int64", "erased_at": TS,
})
# the audit log's anchor: a recent record's number and hash (privacy.audit_log.Anchor), one row
AUDIT_ANCHOR = ibis.schema({"seq": "int64", "hash": "string", "mac": "string",
                            "anchored_at": TS})
# dated feature snapshots (features.history): one row per snapshot; the customers' rows
# are in state_history, made on the first snapshot from customer_state's columns
FEATURE_SNAPSHOTS = ibis.schema({
    "as_of": TS, "run_id": "string", "customers": "int64", "changed": "int64",
    "gone": "int64", "composite": "string", "weights": "string", "created_at": TS,
})
SCHEMAS: dict[str, ibis.Schema] = {
    "events": EVENTS,
    "quarantine": QUARANTINE,
    "batches": BATCHES,
    "customers": CUSTOMERS,
    "consents": CONSENTS,
    "identities": IDENTITIES,
    "identity_rules": IDENTITY_RULES,
    "sessions": SESSIONS,
    "id_tuples": ID_TUPLES,
    "prep_touched": PREP_TOUCHED,
    "customer_weeks": CUSTOMER_WEEKS,
    "feature_snapshots": FEATURE_SNAPSHOTS,
    "stage_runs": STAGE_RUNS,
    "segment_runs": SEGMENT_RUNS,
    "segment_assignments": SEGMENT_ASSIGNMENTS,
    "segment_activations": SEGMENT_ACTIVATIONS,
    "segment_refreshes": SEGMENT_REFRESHES,
    "personas": PERSONAS,
    "persona_overrides": PERSONA_OVERRIDES,
    "cohorts": COHORTS,
    "cohort_members": COHORT_MEMBERS,
    "clv": CLV,
    "churn_scores": CHURN_SCORES,
    "tombstones": TOMBSTONES,
    "exports": EXPORTS,
    "export_members": EXPORT_MEMBERS,
    "webhook_deadletters": WEBHOOK_DEADLETTERS,
    "alerts": ALERTS,
    "activation_state": ACTIVATION_STATE,
    "activation_syncs": ACTIVATION_SYNCS,
    "activation_removals": ACTIVATION_REMOVALS,
    "audit_anchor": AUDIT_ANCHOR,
}


def ensure_tables(engine: Engine) -> None:
    """Create every workspace table that does not exist yet, and add the columns a table
    of an older workspace lacks (null in its rows)."""
    existing = set(engine.list_tables())
    for name, schema in SCHEMAS.items():
        if name not in existing:
            engine.create_empty(name, schema)
            continue
        t = engine.table(name)
        lacking = {c: ibis.null(typ) for c, typ in schema.items() if c not in t.columns}
        if lacking:
            engine.replace_table(name, t.mutate(**lacking))
