"""Consent: the latest recorded choice per customer and purpose decides."""

from __future__ import annotations

from typing import Literal

import ibis
import ibis.expr.types as ir

ANALYTICS = "analytics"


def latest_consents(consents: ir.Table) -> ir.Table:
    """One row per (customer_id, purpose): the most recent record (ties: a refusal wins)."""
    ranked = consents.mutate(
        _rank=ibis.row_number().over(
            group_by=[consents.customer_id, consents.purpose],
            order_by=[consents.ts.desc(), consents.granted.asc()],
        )
    )
    return ranked.filter(ranked._rank == 0).drop("_rank")


def excluded_customers(
    consents: ir.Table,
    known_customers: ir.Table,
    mode: Literal["opt-out", "opt-in"],
    purpose: str = ANALYTICS,
) -> ir.Table:
    """customer_id values to leave out of analysis for ``purpose``.

    ``opt-out``: customers whose latest choice is a refusal. ``opt-in``: every known
    customer without a latest grant.
    """
    latest = latest_consents(consents.filter(consents.purpose == purpose))
    if mode == "opt-out":
        return latest.filter(~latest.granted).select("customer_id").distinct()
    granted = latest.filter(latest.granted).select("customer_id")
    ids = known_customers.select("customer_id").distinct()
    return ids.anti_join(granted, "customer_id")


def consent_summary(consents: ir.Table) -> ir.Table:
    """Per purpose: customers with a latest grant and with a latest refusal."""
    latest = latest_consents(consents)
    return (
        latest.group_by("purpose")
        .aggregate(
            customers=latest.customer_id.nunique(),
            granted=latest.granted.cast("int64").sum(),
            refused=(~latest.granted).cast("int64").sum(),
        )
        .order_by("purpose")
    )


def consent_filter(
    table: ir.Table,
    key: str,
    consents: ir.Table,
    mode: Literal["opt-out", "opt-in"],
    purpose: str = ANALYTICS,
) -> ir.Table:
    """Rows of ``table`` whose customer (column ``key``) may be analyzed for ``purpose``.

    ``opt-out``: all but customers whose latest choice is a refusal. ``opt-in``: only
    customers whose latest choice is a grant (anonymous customers have none).
    """
    latest = latest_consents(consents.filter(consents.purpose == purpose))
    choice = latest.filter(latest.granted if mode == "opt-in" else ~latest.granted)
    ids = choice.select(_consent_id=choice.customer_id).distinct()
    cond = table[key] == ids._consent_id
    return table.semi_join(ids, cond) if mode == "opt-in" else table.anti_join(ids, cond)
