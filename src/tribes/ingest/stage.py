"""The staging expression: one scan of the source that parses, pseudonymizes and checks.

Raw identifiers and personal data never leave this expression un-hashed, so nothing
written to the workspace (tables, quarantine) holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import ibis
import ibis.expr.types as ir

from tribes.engine.functions import md5_hex, struct_to_json
from tribes.engine.io import FILE_COLUMN, ReadResult
from tribes.ingest.mapping import ColumnMapping
from tribes.ingest.parse import UTC, as_text, parse_bool, parse_float, parse_int, parse_ts
from tribes.ingest.spec import KindSpec
from tribes.privacy.pseudonymize import pseudonymize

SEP = "\x1f"
NULL_MARK = "\x1e"  # NUL cannot travel in SQL text
PRE_REASON = "_pre_reason"
RECORD = "_rec"


@dataclass(frozen=True)
class StageOptions:
    source: str
    ts_format: str | None
    tz: str
    now: datetime
    future_limit: datetime
    min_ts: datetime
    key: bytes


def bad_column(name: str) -> str:
    """Stage column holding the raw text of an unparseable value of ``name``."""
    return f"_bad_{name}"


def build_stage(read: ReadResult, spec: KindSpec, mapping: ColumnMapping,
                opts: StageOptions) -> ir.Table:
    """Every source record as one row of parsed target columns plus check results.

    Columns: the mapped targets (ids pseudonymized, typed values parsed, categoricals as
    trimmed text awaiting standardization), ``_bad_<col>`` raw text of values that did
    not parse, ``properties`` (JSON of the other columns, personal data hashed or
    dropped), ``_rec`` (digest of the raw record), ``_file`` and ``_pre_reason``.
    """
    src = read.table
    out: dict[str, ir.Value] = {FILE_COLUMN: src[FILE_COLUMN]}
    checks: list[tuple[ir.BooleanValue, str]] = []
    if read.valid_column is not None:
        checks.append((~src[read.valid_column], "E_MALFORMED"))

    for f in spec.fields:
        source = mapping.targets.get(f.name)
        if source is None:
            continue
        raw = src[source]
        if f.kind == "id":
            out[f.name] = pseudonymize(as_text(raw), opts.key)
        elif f.kind in ("text", "snake", "place"):
            out[f.name] = as_text(raw)
        else:
            parsed: ir.Value
            if f.kind == "ts":
                parsed = parse_ts(raw, fmt=opts.ts_format, tz=opts.tz)
            elif f.kind == "float":
                parsed = parse_float(raw)
            elif f.kind == "int":
                parsed = parse_int(raw)
            else:
                parsed = parse_bool(raw)
            present = as_text(raw)
            out[f.name] = parsed
            out[bad_column(f.name)] = ibis.cases(
                (parsed.isnull() & present.notnull(), present), else_=ibis.null("string")
            )

    if spec.id_fields:
        ids = [out[c] for c in spec.id_fields if c in out]
        no_id = ibis.literal(True)
        for v in ids:
            no_id = no_id & v.isnull()
        checks.append((no_id, "E_NO_ID"))
    checks.extend(_typed_checks(spec, out, opts))

    out["properties"] = _properties(src, mapping, opts.key)
    out[RECORD] = _record_digest(src, read.columns)
    reason = ibis.cases(*[(cond, code) for cond, code in checks], else_=ibis.null("string")) \
        if checks else ibis.null("string")
    out[PRE_REASON] = reason
    return src.select(**out)


def _typed_checks(spec: KindSpec, out: dict[str, ir.Value],
                  opts: StageOptions) -> list[tuple[ir.BooleanValue, str]]:
    checks: list[tuple[ir.BooleanValue, str]] = []
    for f in spec.fields:
        if f.name not in out or f.kind in ("id", "text", "snake", "place"):
            continue
        value, bad = out[f.name], out[bad_column(f.name)]
        if f.kind == "ts" and f.required:
            checks.append((value.isnull() & bad.isnull(), "E_TS_MISSING"))
            checks.append((bad.notnull(), "E_TS_PARSE"))
            checks.append((value > ibis.literal(opts.future_limit, type=UTC), "E_TS_FUTURE"))
            checks.append((value < ibis.literal(opts.min_ts, type=UTC), "E_TS_RANGE"))
        elif f.kind == "bool" and f.required:
            checks.append((value.isnull(), "E_CONSENT_VALUE"))
        elif f.name == "amount":
            checks.append((bad.notnull(), "E_AMOUNT"))
        elif f.name == "quantity":
            checks.append((bad.notnull(), "E_QUANTITY"))
        else:
            checks.append((bad.notnull(), "E_VALUE"))
    return checks


def _properties(src: ir.Table, mapping: ColumnMapping, key: bytes) -> ir.StringValue:
    """JSON object of the source columns no target uses; personal data hashed or dropped."""
    fields: dict[str, ir.Value] = {c: src[c] for c in mapping.extra}
    for column, action in mapping.pii.items():
        if action == "hash":
            fields[column] = pseudonymize(as_text(src[column]), key)
    if not fields:
        return ibis.null("string")
    return struct_to_json(ibis.struct(fields))


def _record_digest(src: ir.Table, columns: list[str]) -> ir.StringValue:
    """md5 of the raw record (all source columns as text); identical records share it."""
    parts = [src[c].cast("string").fill_null(NULL_MARK) for c in columns]
    return md5_hex(ibis.literal(SEP).join(parts))
