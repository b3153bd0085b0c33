"""Erasure (``tribes forget``): a person leaves every table, and cannot come back.

The person is found by any of their ids (raw, as in the source files, or pseudonymized)
or their ``customer_key``; every id linked to them in ``identities`` goes with them. In
one transaction their rows are deleted from the event, profile and consent tables, the
identity graph and the identity rules naming them, sessions, features, every segment
version, cohorts, CLV scores, the exports index and quarantine, and each of their
pseudonymized ids gets a tombstone.
Ingest quarantines rows carrying a tombstoned id as ``E_ERASED`` without keeping them,
so re-ingesting old files does not bring the person back.

Exports reach them too: the service's exports (kept in the workspace) lose their rows
with the rest, export files tribes wrote are rewritten without them (or the result says
why not), and activation targets are sent their removal at the next sync. The result
lists every export that held the person, so the people it was given to can be told.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.config import format_duration
from tribes.engine import Engine
from tribes.errors import DependencyError, InputError, TribesError
from tribes.features import FEATURES_TABLE, HISTORY_TABLE, STATE_TABLE
from tribes.privacy import PSEUDONYM_LENGTH, pseudonym
from tribes.realtime import RedisState, connect_redis, redis_url
from tribes.store import (
    ANON_PREFIX,
    IN_WORKSPACE,
    SCHEMAS,
    SNAPSHOT_PREFIX,
    TOMBSTONES,
    clean_ident,
    remove_from_file,
    resolve_customer,
)
from tribes.sync import owed_removals
from tribes.workspace import Workspace

# tables whose rows name a person by pseudonymized id rather than by customer_key
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("customer_id", "anonymous_id", "device_id"),
    "id_tuples": ("customer_id", "anonymous_id", "device_id"),
    "customers": ("customer_id",),
    "consents": ("customer_id",),
    "identity_rules": ("a", "b"),  # tribes identity: a rule naming any of their ids goes
}
_PSEUDONYM = re.compile(rf"^(anon:)?[0-9a-f]{{{PSEUDONYM_LENGTH}}}$")


@dataclass(frozen=True)
class Erasure:
    customer_key: str | None
    ids: int
    deleted: dict[str, int]
    exports: list[dict[str, Any]] = field(default_factory=list)
    realtime: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows}


def person_ids(ws: Workspace, engine: Engine, ident: str) -> tuple[str | None, list[str]]:
    """The customer_key and every pseudonymized id of the person ``ident`` names.

    ``ident`` may be a raw id, a pseudonym or a customer_key. A person not in the
    identity graph (not prepped yet, or never seen) is their id's pseudonym alone.
    """
    ident = clean_ident(ident)
    try:
        key = resolve_customer(ws, engine, ident)
    except InputError as exc:
        if exc.code not in ("E_NOT_FOUND", "E_NO_PREP"):
            raise
        # not in the graph: the pseudonym of the raw id (or the pseudonym given)
        given = _PSEUDONYM.match(ident) and not ident.startswith("anon:")
        pid = ident if given else pseudonym(ident, ws.secret())
        return pid, [pid]
    ids = engine.table("identities")
    linked = engine.execute(ids.filter(ids.customer_key == key).select("id"))["id"]
    pids = sorted({str(v) for v in linked} | ({key} if not key.startswith("anon:") else set()))
    return key, pids


def _person_filter(t: ir.Table, table: str, key: str | None,
                   pids: list[str]) -> ir.BooleanValue | None:
    preds: list[ir.BooleanValue] = []
    for col in ID_COLUMNS.get(table, ()):
        if col in t.columns:
            preds.append(t[col].isin(pids))
    if table == "identities":
        preds.append(t.id.isin(pids))
    if table == HISTORY_TABLE:
        # past snapshots may hold the person under a key they had before an identity
        # merge: a key is one of the person's ids (anonymous ones prefixed)
        keys = {*([key] if key else []), *pids, *(ANON_PREFIX + p for p in pids)}
        preds.append(t.customer_key.isin(sorted(keys)))
    elif "customer_key" in t.columns and key is not None:
        preds.append(t.customer_key == key)
    if table == "quarantine":
        # the quarantined row is kept as JSON text with pseudonymized ids, twice: as read
        # (raw) and by source column, for replay (record)
        preds.extend(t.raw.contains(p) | t.record.contains(p) for p in pids)
    if not preds:
        return None
    return ibis.or_(*preds)


def forget(ws: Workspace, engine: Engine, ident: str, *, reason: str = "") -> Erasure:
    """Erase the person ``ident`` names from every table and tombstone their ids."""
    key, pids = person_ids(ws, engine, ident)
    deleted: dict[str, int] = {}
    exports: list[dict[str, Any]] = []
    with engine.transaction():
        if key is not None and engine.has_table("export_members"):
            m, x = engine.table("export_members"), engine.table("exports")
            held = x.semi_join(m.filter(m.customer_key == key), "export_id")
            exports = engine.execute(held.select("export_id", "what", "path", "format",
                                                 "created_at")
                                     .order_by("created_at")).to_dict("records")
        owed = owed_removals(engine, key)  # targets holding them remove them next sync
        stored = set(engine.list_tables())
        snapshots = {t for t in stored if t.startswith(SNAPSHOT_PREFIX)}
        for table in sorted(((set(SCHEMAS) | {FEATURES_TABLE, STATE_TABLE, HISTORY_TABLE})
                             & stored
                             | snapshots)
                            - {"tombstones"}):
            t = engine.table(table)
            pred = _person_filter(t, table, key, pids)
            if pred is None:
                continue
            n = int(engine.scalar(t.filter(pred).count()))
            if n:
                engine.delete_where(table, pred)
                deleted[table] = n
        stones = engine.table("tombstones")
        known = set(engine.execute(stones.filter(stones.id.isin(pids)).select("id"))["id"])
        new = [{"id": p, "erased_at": datetime.now(UTC)} for p in pids if p not in known]
        if new:
            engine.insert("tombstones", ibis.memtable(new, schema=TOMBSTONES))
        live = _forget_realtime(ws, key, pids)
        if key is not None:
            exports = [{**e, "erasure": _erase_from_export(e, key)} for e in exports]
        result = Erasure(customer_key=key, ids=len(pids), deleted=deleted, exports=exports,
                         realtime=live)
        # the log keeps the pseudonymized key only, never the id as given
        engine.audit("forget", target=key or "", keys=[key] if key else [], rows=result.rows,
                     detail={"reason": reason, "ids": len(pids), "deleted": deleted,
                             "activation_removals_owed": owed,
                             "exports": {e["export_id"]: e["erasure"] for e in exports},
                             "realtime": live})
    return result


def _erase_from_export(export: dict[str, Any], key: str) -> str:
    """Take the person out of an export that held them; says what became of it."""
    where, what = str(export["path"]), str(export["what"])
    if where.startswith(IN_WORKSPACE):
        return "removed from the export kept in the workspace"
    if what.startswith("activation:"):
        return ("a delivery to the activation target: the target is sent their removal at "
                "its next sync (tribes activate)")
    path = Path(where)
    if not path.is_file():
        return f"the file {path} is gone: nothing to rewrite"
    try:
        n = remove_from_file(path, str(export["format"]), key)
    except (OSError, InputError, ValueError) as exc:
        why = exc.message if isinstance(exc, InputError) else str(exc)
        return f"NOT rewritten ({why}): remove the person from {path} by hand or delete it"
    return f"rewritten without their {n} row(s): {path}"


def _forget_realtime(ws: Workspace, key: str | None, pids: list[str]) -> dict[str, Any]:
    """Erase the person's real-time state in Redis (tribes stream), when it is reachable.

    When it is not, the stream still ignores them (it reads the tombstones) and their state
    expires after ``realtime.state_ttl``; the result says so.
    """
    cfg = ws.config.realtime
    keys = sorted({*(k for k in [key] if k), *pids, *(f"anon:{p}" for p in pids)})
    try:
        client = connect_redis(redis_url(cfg), timeout=5, connect_timeout=1)
    except DependencyError:
        return {"status": "no redis client installed"}
    except TribesError as exc:
        return {"status": f"not reachable ({exc.code}); the stream ignores the person and "
                f"their state expires after {format_duration(cfg.state_ttl)}"}

    try:
        done = RedisState(client, cfg.prefix).forget(keys, output_stream=cfg.output_stream)
    finally:
        client.close()
    return {"status": "erased", **done}
