"""One customer across the workspace: ids, sessions, timeline, features, consent."""

from __future__ import annotations

from typing import Any

import ibis

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.privacy import consent_filter, latest_consents, pseudonym
from tribes.store.keyed import ANON_PREFIX, keyed_consents, keyed_events
from tribes.workspace import RunContext, Workspace


def _records(engine: Engine, expr: Any) -> list[dict[str, Any]]:
    df = engine.execute(expr)
    return [{k: (None if v is None or (isinstance(v, float) and v != v) else
                 (list(v) if hasattr(v, "tolist") and not isinstance(v, str) else v))
             for k, v in r.items()} for r in df.to_dict("records")]


def clean_ident(ident: str) -> str:
    """An id as given, stripped; refused when empty or holding control characters."""
    ident = ident.strip()
    if not ident or any(ord(c) < 32 or ord(c) == 127 for c in ident):
        raise InputError("give a customer id: non-empty, printable text", code="E_ID")
    return ident


def _candidates(ws: Workspace, ident: str) -> list[str]:
    """What ``ident`` may be stored as: itself (a pseudonym or customer_key) or the
    pseudonym of a raw id."""
    ident = clean_ident(ident)
    return [ident, pseudonym(ident, ws.secret())]


def _not_found(engine: Engine, ident: str) -> InputError:
    ids = engine.table("identities")
    if not int(engine.scalar(ids.count())):
        return InputError("no identities yet; run: tribes prep", code="E_NO_PREP")
    return InputError(
        f"no customer with id '{ident}': give a raw customer, anonymous or device id "
        "as it appears in the source files, a stored pseudonym, or a customer_key",
        code="E_NOT_FOUND",
    )


def resolve_customer(ws: Workspace, engine: Engine, ident: str) -> str:
    """The customer_key of a raw id (any id type), a stored pseudonym or a customer_key."""
    candidates = _candidates(ws, ident)
    ids = engine.table("identities")
    hits = engine.execute(
        ids.filter(ids.id.isin(candidates) | ids.customer_key.isin(candidates))
        .select("customer_key").distinct()
    )["customer_key"].tolist()
    if not hits:
        raise _not_found(engine, ident.strip())
    if len(hits) > 1:
        raise InputError(f"'{ident}' matches {len(hits)} customers ({', '.join(hits[:5])}); "
                         "give one of their customer_keys", code="E_AMBIGUOUS")
    return str(hits[0])


def resolve_ids(ws: Workspace, engine: Engine, ident: str) -> list[dict[str, Any]]:
    """The stored ids (``id_type``, ``id``, ``customer_key``, ``status``) that ``ident``
    names: a raw id of any type (pseudonymized to look it up), a stored pseudonym, or a
    customer_key, which names the id it is made of (a known id, or the id after
    ``anon:``). An id stored under two types (the same value as anonymous and device id)
    gives two rows."""
    candidates = _candidates(ws, ident)
    candidates += [c.removeprefix(ANON_PREFIX) for c in candidates
                   if c.startswith(ANON_PREFIX)]
    ids = engine.table("identities")
    rows = _records(engine, ids.filter(ids.id.isin(candidates))
                    .select("id_type", "id", "customer_key", "status")
                    .order_by(["id_type", "id"]))
    if not rows:
        raise _not_found(engine, ident.strip())
    return rows


def customer_view(ctx: RunContext, key: str, *, limit: int = 20) -> dict[str, Any]:
    """Everything stored about one customer_key (newest sessions and events first)."""
    engine = ctx.engine
    ids = engine.table("identities")
    sessions = engine.table("sessions")
    events = keyed_events(engine.table("events"), ids)
    mine = events.filter(events.customer_key == key)
    n_sessions = int(engine.scalar(sessions.filter(sessions.customer_key == key).count()))
    n_events = int(engine.scalar(mine.count()))
    view: dict[str, Any] = {
        "customer_key": key,
        "ids": _records(engine, ids.filter(ids.customer_key == key)
                        .select("id_type", "id", "status").order_by(["id_type", "id"])),
        "n_sessions": n_sessions,
        "n_events": n_events,
        "sessions": _records(engine, sessions.filter(sessions.customer_key == key)
                             .order_by(ibis.desc("start")).limit(limit)
                             .select("session_id", "start", "duration_s", "n_events",
                                     "event_types", "has_add_to_cart", "has_purchase",
                                     "source", "device")),
        "timeline": _records(engine, mine.order_by([ibis.desc("ts"), ibis.desc("event_id")])
                             .limit(limit).select("ts", "event_type", "source", "channel",
                                                  "device", "category", "order_id",
                                                  "amount")),
    }
    feats: dict[str, Any] | None = None
    if engine.has_table("customer_features"):
        f = engine.table("customer_features")
        rows = _records(engine, f.filter(f.customer_key == key))
        feats = rows[0] if rows else None
    view["features"] = feats
    c = keyed_consents(engine)
    view["consents"] = _records(engine, latest_consents(c.filter(c.customer_id == key))
                                .select("purpose", "granted", "ts").order_by("purpose"))
    one = ibis.memtable({"customer_key": [key]})
    view["analyzed"] = bool(int(engine.scalar(consent_filter(
        one, "customer_key", c, ctx.settings.consent_mode).count())))
    return view
