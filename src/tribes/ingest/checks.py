"""Checks that need standardized values, messages for each reason, and missing values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine, struct_to_json
from tribes.errors import ConfigError
from tribes.ingest.lookups import Lookups
from tribes.ingest.spec import KindSpec
from tribes.ingest.stage import PRE_REASON, bad_column

REASON = "_reason"


def post_checks(t: ir.Table, spec: KindSpec, lookups: Lookups, whitelist: list[str],
                drop_columns: list[str], keep_unpriced: bool = False
                ) -> list[tuple[ir.BooleanValue, str]]:
    """Checks on standardized values (is it a purchase?), asked of the raw values through
    the lookups so no join is needed; they come after the staged checks.

    ``keep_unpriced`` (an amount policy that keeps missing amounts: flag, constant,
    median, mode): a purchase without an amount is kept; only a negative one fails."""
    checks: list[tuple[ir.BooleanValue, str]] = []
    if spec.kind == "events":
        checks.append((lookups.standard_is(t, "event_type", {None}), "E_NO_EVENT_TYPE"))
        if whitelist:
            checks.append((~lookups.standard_is(t, "event_type", set(whitelist)),
                           "E_EVENT_TYPE"))
        is_purchase = lookups.standard_is(t, "event_type", {"purchase"})
        if "amount" in t.columns:
            bad = (t.amount < 0).fill_null(False) if keep_unpriced else (
                t.amount.isnull() | (t.amount < 0))
            checks.append((is_purchase & bad, "E_AMOUNT"))
        elif not keep_unpriced:
            checks.append((is_purchase, "E_AMOUNT"))
    for col in drop_columns:
        if lookups.is_standardized(col):
            checks.append((lookups.standard_is(t, col, {None}), "E_MISSING_VALUE"))
        elif col in t.columns:
            checks.append((t[col].isnull(), "E_MISSING_VALUE"))
    return checks


def with_reason(t: ir.Table, checks: list[tuple[ir.BooleanValue, str]],
                erased: ir.BooleanValue | None = None) -> ir.Table:
    """The first failing check names the row's reason; an erased person's row is
    ``E_ERASED`` whatever else is wrong with it (so nothing of it is kept)."""
    post = ibis.cases(*checks, else_=ibis.null("string")) if checks else ibis.null("string")
    reason = t[PRE_REASON].coalesce(post)
    if erased is not None:
        reason = ibis.cases((erased, ibis.literal("E_ERASED")), else_=reason)
    return t.mutate(**{REASON: reason})


def _text(v: ir.Value) -> ir.StringValue:
    return v.cast("string").fill_null("")


def message(t: ir.Table, ts_format: str | None, whitelist: list[str], *,
            malformed: str = "the line is not a JSON object",
            ts_guessed: bool = False) -> ir.StringValue:
    """A sentence per quarantined row naming the offending value; ``malformed`` says what
    a record the reader flagged as unparseable is; ``ts_guessed``: ``ts_format`` was
    sniffed, not given."""
    r = t[REASON]
    cases: list[tuple[ir.BooleanValue, ir.StringValue]] = []
    ts_bad = bad_column("ts")
    if ts_bad in t.columns:
        if not ts_format:
            how = " (ISO-8601 or epoch expected)"
        elif ts_guessed:
            how = (f" (format {ts_format} as sniffed, ISO-8601 or epoch expected; pass "
                   "--ts-format)")
        else:
            how = f" with format {ts_format}"
        cases.append((r == "E_TS_PARSE", "timestamp '" + _text(t[ts_bad]) + "' could not be parsed"
                      + how))
    if "ts" in t.columns:
        cases.append((r == "E_TS_FUTURE", "timestamp " + _text(t.ts) + " is in the future"))
        cases.append((r == "E_TS_RANGE", "timestamp " + _text(t.ts) + " is before ingest.min_ts"))
    if "event_type" in t.columns:
        allowed = ", ".join(whitelist[:10])
        cases.append((r == "E_EVENT_TYPE", "event type '" + _text(t.event_type)
                      + f"' is not allowed (allowed: {allowed})"))
    if bad_column("amount") in t.columns:
        bad = t[bad_column("amount")]
        comma = ibis.cases((bad.re_search(r"^[^.]*\d,\d{1,2}\D*$"),
                            " (a decimal comma? pass --decimal ,)"), else_="")
        cases.append(((r == "E_AMOUNT") & bad.notnull(),
                      "amount '" + _text(bad) + "' is not a number" + comma))
    if "amount" in t.columns:
        cases.append(((r == "E_AMOUNT") & (t.amount < 0),
                      "purchase with negative amount " + _text(t.amount)))
    if bad_column("quantity") in t.columns:
        cases.append((r == "E_QUANTITY",
                      "quantity '" + _text(t[bad_column("quantity")]) + "' is not a whole number"))
    if bad_column("granted") in t.columns:
        cases.append((r == "E_CONSENT_VALUE",
                      "consent value '" + _text(t[bad_column("granted")])
                      + "' is not a yes/no (empty or unrecognized)"))
    bad_cols = [c for c in t.columns if c.startswith("_bad_")]
    for c in bad_cols:
        name = c.removeprefix("_bad_")
        cases.append(((r == "E_VALUE") & t[c].notnull(),
                      f"{name} '" + _text(t[c]) + "' could not be parsed"))
    fixed = {
        "E_MALFORMED": malformed,
        "E_HEADER": "the header line again (files concatenated into one?); not an event",
        "E_NO_ID": "no identifier (customer_id, anonymous_id or device_id) on the row",
        "E_TS_MISSING": "timestamp is empty",
        "E_NO_EVENT_TYPE": "event type is empty; map a column or pass --event-type",
        "E_AMOUNT": "purchase without an amount",
        "E_MISSING_VALUE": "a column declared 'drop' in [missing] is empty",
        "E_ERASED": "a row of an erased person (tribes forget); not kept",
    }
    cases.extend((r == code, ibis.literal(text)) for code, text in fixed.items())
    return ibis.cases(*cases, else_=r)


def raw_json(t: ir.Table, spec: KindSpec) -> ir.StringValue:
    """The quarantined row as JSON: target values (unparseable ones as given) + properties."""
    fields: dict[str, ir.Value] = {}
    for f in spec.fields:
        if f.name not in t.columns:
            continue
        bad = bad_column(f.name)
        if bad in t.columns:
            fields[f.name] = t[bad].coalesce(t[f.name].cast("string"))
        else:
            fields[f.name] = t[f.name].cast("string")
    if "properties" in t.columns:
        fields["properties"] = t.properties.cast("json")
    return struct_to_json(ibis.struct(fields))


def missing_policy(spec: KindSpec, policies: Mapping[str, str]) -> dict[str, str]:
    """The declared policies for this kind, checked against its columns."""
    allowed = set(spec.names) - set(spec.id_fields) - {"ts", spec.key}
    for col in policies:
        if col not in allowed:
            raise ConfigError(
                f"[missing.{spec.kind}] names '{col}', which is not a {spec.kind} column that "
                f"may be missing (choose from: {', '.join(sorted(allowed))})",
                code="E_CONFIG",
            )
    return dict(policies)


def impute(engine: Engine, good: ir.Table, policies: Mapping[str, str],
           types: Mapping[str, Any] | None = None,
           where: Mapping[str, ir.BooleanValue] | None = None) -> tuple[
    dict[str, ir.Value], dict[str, dict[str, Any]]
]:
    """Replacement expressions for imputed columns and a per-column report.

    Medians and modes are computed over the batch's loaded rows; every policy column's
    missing count is reported, whatever its policy. A policy column the input does not
    have is missing on every row (a constant fills it, of its stored type in ``types``).
    ``where`` limits a column to the rows that should have it (an amount: purchases): only
    those count as missing and are filled.
    """
    where = where or {}
    present = [c for c in policies if c in good.columns]
    report: dict[str, dict[str, Any]] = {c: {"policy": p, "missing": 0}
                                         for c, p in policies.items()}
    absent = [c for c in policies if c not in good.columns]
    replace_absent: dict[str, ir.Value] = {}
    if absent:
        for c in absent:
            rows = good.filter(where[c]) if c in where else good
            n_rows = int(engine.scalar(rows.count()))
            report[c]["missing"] = n_rows
            p = policies[c]
            if p.startswith("constant:") and types and c in types:
                given = p.removeprefix("constant:")
                try:
                    lit = ibis.literal(given).cast(types[c])
                    replace_absent[c] = (ibis.ifelse(where[c], lit, ibis.null(types[c]))
                                         if c in where else lit)
                except Exception:
                    raise ConfigError(f"cannot use '{given}' as a value of {c}",
                                      code="E_CONFIG") from None
                report[c]["imputed"] = n_rows
                report[c]["value"] = given
    if not present:
        return replace_absent, report
    def lacks(c: str) -> ir.BooleanValue:
        return good[c].isnull() & where[c] if c in where else good[c].isnull()

    aggs: dict[str, ir.Scalar] = {f"n_{c}": lacks(c).cast("int64").sum() for c in present}
    for c in present:
        p = policies[c]
        if p == "median" and good[c].type().is_numeric():
            aggs[f"v_{c}"] = good[c].median()
        elif p == "median":
            raise ConfigError(f"missing policy 'median' needs a numeric column; '{c}' is not",
                              code="E_CONFIG")
        elif p == "mode":
            aggs[f"v_{c}"] = good[c].mode()
    row = engine.execute(good.aggregate(**aggs)).iloc[0].to_dict()
    replace: dict[str, ir.Value] = {}
    for c in present:
        p = policies[c]
        n = int(row[f"n_{c}"] or 0)
        report[c]["missing"] = n
        value: Any = None
        if p.startswith("constant:"):
            value = p.removeprefix("constant:")
        elif p in ("median", "mode"):
            value = row.get(f"v_{c}")
            value = None if value is None or value != value else value  # NaN -> None
        if value is None or p in ("flag", "drop"):
            continue
        typ = good[c].type()
        try:
            lit = ibis.literal(value).cast(typ)
        except Exception:
            raise ConfigError(f"cannot use '{value}' as a value of {c}", code="E_CONFIG") from None
        replace[c] = ibis.ifelse(lacks(c), lit, good[c])
        report[c]["imputed"] = n
        report[c]["value"] = value if isinstance(value, (int, float, str)) else str(value)
    return {**replace, **replace_absent}, report
