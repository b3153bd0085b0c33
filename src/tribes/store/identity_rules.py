"""The ``identity_rules`` table: identity repairs that every prep applies (tribes identity).

A rule is ``merge`` (the customers of ids ``a`` and ``b`` are one), ``split`` (id ``b``
leaves the customer of id ``a``) or ``block`` (id ``a`` links nothing). Ids are stored
pseudonymized with their id type, never raw. Rules are numbered in the order they are
made; undoing one stamps ``undone_at`` and keeps it listed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd

from tribes.engine import Engine
from tribes.store.tables import IDENTITY_RULES

TABLE = "identity_rules"
ACTIONS = ("merge", "split", "block")


@dataclass(frozen=True)
class IdentityRule:
    """One stored rule; ``undone_at`` is None while it applies."""

    rule_id: int
    action: str
    a_type: str
    a: str
    b_type: str | None = None
    b: str | None = None
    note: str = ""
    created_at: datetime | None = None
    created_by: str = ""
    undone_at: datetime | None = None
    undone_by: str | None = None

    @property
    def active(self) -> bool:
        return self.undone_at is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


def _value(v: Any) -> Any:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.to_pydatetime() if isinstance(v, pd.Timestamp) else v


def list_rules(engine: Engine, *, include_undone: bool = False) -> list[IdentityRule]:
    """The rules in the order they were made (only those in force unless
    ``include_undone``); none in a workspace made before identity rules existed."""
    if not engine.has_table(TABLE):
        return []
    t = engine.table(TABLE)
    if not include_undone:
        t = t.filter(t.undone_at.isnull())
    df = engine.execute(t.order_by("rule_id"))
    rules = []
    for r in df.to_dict("records"):
        row = {k: _value(v) for k, v in r.items()}
        row["rule_id"] = int(row["rule_id"])
        row["note"] = row["note"] or ""
        row["created_by"] = row["created_by"] or ""
        rules.append(IdentityRule(**row))
    return rules


def add_rule(engine: Engine, *, action: str, a_type: str, a: str, b_type: str | None = None,
             b: str | None = None, note: str = "", actor: str = "") -> IdentityRule:
    """Store a new rule (numbered after the last one, undone or not) and return it.
    Call inside the caller's transaction, with its audit record."""
    if action not in ACTIONS:
        raise ValueError(f"unknown identity rule action {action!r}")
    t = engine.table(TABLE)
    last = engine.scalar(t.rule_id.max())
    rule = IdentityRule(rule_id=1 if last is None or pd.isna(last) else int(last) + 1,
                        action=action, a_type=a_type, a=a, b_type=b_type, b=b, note=note,
                        created_at=datetime.now(UTC), created_by=actor)
    engine.insert(TABLE, ibis.memtable(pd.DataFrame([asdict(rule)])).cast(IDENTITY_RULES))
    return rule


def mark_undone(engine: Engine, rule_id: int, *, actor: str = "") -> None:
    """Stamp rule ``rule_id`` undone now (the caller checked it is in force)."""
    t = engine.table(TABLE)
    now = ibis.literal(datetime.now(UTC), type="timestamp('UTC')")
    hit = t.rule_id == rule_id
    engine.replace_table(TABLE, t.mutate(
        undone_at=ibis.ifelse(hit, now, t.undone_at),
        undone_by=ibis.ifelse(hit, ibis.literal(actor, type="string"), t.undone_by)))
