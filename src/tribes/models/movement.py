"""How customers moved between two dates: by RFM label, or by the segment one stored
version gives them on each date (the same model both times, so a move is the customer's
behaviour changing, not the model's). The dated features come from
:mod:`tribes.features.history`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.features import NO_PURCHASE, NO_SEGMENT, NOT_YET, DatedFeatures
from tribes.models.membership import apply_version, version_columns
from tribes.store import get_run, require_version, segment_names

BY = ("rfm", "segment")


def _rfm_labels(t: ir.Table) -> ir.Table:
    return t.select("customer_key", label=t.rfm_label.fill_null(NO_PURCHASE))


def _segment_labels(t: ir.Table, run: dict[str, Any], names: Mapping[int, str]) -> ir.Table:
    missing = [c for c in version_columns(run) if c not in t.columns]
    if missing:
        raise InputError(f"version {run['version']} reads {', '.join(missing)}, which dated "
                         "features do not keep (share columns); compare by RFM instead: "
                         "--by rfm", code="E_VERSION")
    a = apply_version(t, run)
    name = ibis.cases(*[(a.segment_id == i, n) for i, n in names.items()],
                      else_=ibis.literal(NO_SEGMENT))
    return a.select("customer_key", label=name)


@dataclass(frozen=True)
class Migration:
    """Customers per (label on the first date, label on the second date)."""

    by: str
    version: int | None
    start: DatedFeatures
    end: DatedFeatures
    cells: pd.DataFrame  # from, to, customers
    pairs: ir.Table      # customer_key, from, to: every customer on either date

    def matrix(self) -> pd.DataFrame:
        """The cells as a from x to table of counts."""
        if self.cells.empty:
            return pd.DataFrame()
        m = self.cells.pivot(index="from", columns="to", values="customers")
        return m.fillna(0).astype("int64")

    def check_labels(self, *given: str | None) -> None:
        """Refuse a label (None: any) that no customer has on either date."""
        labels = set(self.cells["from"]) | set(self.cells["to"])
        for label in given:
            if label is not None and label not in labels:
                raise InputError(f"no label '{label}' on either date; the labels are: "
                                 + ", ".join(sorted(labels)), code="E_USAGE")

    def customers(self, start: str | None = None, end: str | None = None) -> ir.Table:
        """The customers (``customer_key``, ``from``, ``to``) of one cell, a row
        (``start``), a column (``end``) or all; labels as :attr:`cells` writes them."""
        self.check_labels(start, end)
        p = self.pairs
        if start is not None:
            p = p.filter(p["from"] == start)
        if end is not None:
            p = p.filter(p["to"] == end)
        return p

    def as_dict(self) -> dict[str, Any]:
        c = self.cells
        both = c[(c["from"] != NOT_YET) & (c["to"] != NOT_YET)]
        stayed = int(both[both["from"] == both["to"]]["customers"].sum())
        return {
            "by": self.by, "version": self.version,
            "from": self.start.describe(), "to": self.end.describe(),
            "customers_on_both": int(both["customers"].sum()),
            "stayed": stayed, "moved": int(both["customers"].sum()) - stayed,
            "new": int(c[c["from"] == NOT_YET]["customers"].sum()),
            "left": int(c[c["to"] == NOT_YET]["customers"].sum()),
            "cells": [{"from": r["from"], "to": r["to"], "customers": int(r["customers"])}
                      for r in c.to_dict("records")],
        }


def migration(engine: Engine, start: DatedFeatures, end: DatedFeatures, *, by: str = "rfm",
              version: int | None = None) -> Migration:
    """How the customers moved between two dated feature tables
    (:func:`tribes.features.history.features_on`): by RFM label, or by the segment a
    stored version (default: the active one) gives them on each date.

    A customer present on one date only is ``not a customer`` on the other: new since the
    first date, or gone since (erased, merged into another customer, consent withdrawn).
    """
    if by == "rfm":
        a, b, v = _rfm_labels(start.table), _rfm_labels(end.table), None
    elif by == "segment":
        v = require_version(engine, version, purpose="to compare segments between dates")
        run = get_run(engine, v)
        names = segment_names(engine, v)
        a, b = _segment_labels(start.table, run, names), _segment_labels(end.table, run, names)
    else:
        raise InputError(f"unknown --by '{by}'; use one of {', '.join(BY)}", code="E_USAGE")
    a = a.select(a_key="customer_key", a_label="label")
    b = b.select(b_key="customer_key", b_label="label")
    j = a.outer_join(b, a.a_key == b.b_key)
    # kept: the counts and any list of customers read it, not the two dates' features again
    pairs = engine.create_temp("_mv_pairs", j.select(
        customer_key=j.a_key.fill_null(j.b_key),
        **{"from": j.a_label.fill_null(NOT_YET), "to": j.b_label.fill_null(NOT_YET)}))
    cells = engine.execute(pairs.group_by(["from", "to"]).aggregate(customers=pairs.count())
                           .order_by(["from", "to"]))
    cells["customers"] = cells["customers"].astype("int64")
    return Migration(by=by, version=v, start=start, end=end, cells=cells, pairs=pairs)
