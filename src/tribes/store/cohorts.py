"""Stored behavioral cohorts: each one's rule and its members when last evaluated.

The rule language and its evaluation live in :mod:`tribes.analysis.rules` and
:mod:`tribes.analysis.cohorts`; this module only reads and writes the two tables.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.engine import Engine
from tribes.errors import InputError, closest
from tribes.store.tables import COHORTS

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InputError(f"invalid cohort name '{name}': start with a letter, then letters, "
                         "digits, '_' or '-' (at most 64)", code="E_COHORT_NAME")
    return name


def list_cohorts(engine: Engine) -> list[dict[str, Any]]:
    if not engine.has_table("cohorts"):  # a workspace from before cohorts, opened read-only
        return []
    df = engine.execute(engine.table("cohorts").order_by("name"))
    return [_row(r) for r in df.to_dict("records")]


def get_cohort(engine: Engine, name: str) -> dict[str, Any]:
    rows = {c["name"]: c for c in list_cohorts(engine)}
    if name not in rows:
        guess = closest(name, rows)
        raise InputError(f"no cohort named '{name}'"
                         + (f"; did you mean '{guess}'?" if guess else "")
                         + (f" (cohorts: {', '.join(rows)})" if rows else
                            "; define one with: tribes cohorts define NAME --rule '...'"),
                         code="E_NO_COHORT")
    return rows[name]


def save_cohort(engine: Engine, *, name: str, rule: str, description: str, as_of: Any,
                members: ir.Table, created_at: Any = None) -> dict[str, Any]:
    """Store (or replace) a cohort and its members in one transaction."""
    now = datetime.now(UTC)
    with engine.transaction():
        engine.delete_where("cohort_members", engine.table("cohort_members").cohort == name)
        engine.insert("cohort_members", members.select(
            cohort=ibis.literal(name), customer_key=members.customer_key))
        m = engine.table("cohort_members")
        n = int(engine.scalar(m.filter(m.cohort == name).count()))
        engine.delete_where("cohorts", engine.table("cohorts").name == name)
        row = pd.DataFrame([{"name": name, "rule": rule, "description": description,
                             "created_at": pd.Timestamp(created_at) if created_at else now,
                             "refreshed_at": now,
                             "as_of": pd.Timestamp(as_of) if as_of is not None else None,
                             "n_customers": n}])
        engine.insert("cohorts", ibis.memtable(row).cast(COHORTS))
        engine.audit("cohorts.define", target=name, rows=n, detail={"rule": rule})
    return get_cohort(engine, name)


def drop_cohort(engine: Engine, name: str) -> None:
    get_cohort(engine, name)
    with engine.transaction():
        engine.delete_where("cohort_members", engine.table("cohort_members").cohort == name)
        engine.delete_where("cohorts", engine.table("cohorts").name == name)
        engine.audit("cohorts.drop", target=name)


def cohort_members(engine: Engine, name: str) -> ir.Table:
    """``c_key`` of every member of a stored cohort (an error names the known ones)."""
    get_cohort(engine, name)
    m = engine.table("cohort_members")
    return m.filter(m.cohort == name).select(c_key="customer_key")


def _row(r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r)
    for k in ("created_at", "refreshed_at", "as_of"):
        v = out.get(k)
        out[k] = None if v is None or pd.isna(v) else pd.Timestamp(v).isoformat()
    out["n_customers"] = int(out["n_customers"] or 0)
    return out
