"""The staging expression: every source record parsed and checked, as an Ibis expression.

It is never written anywhere: ingest scans it a few times (profile, quarantine, load),
which costs less than copying millions of rows. Its identifier columns are still raw;
the loader replaces them with pseudonyms (``lookups.py``) before any row is written to a
workspace table. Personal-data columns are hashed or dropped in ``derive``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import count, takewhile

import ibis
import ibis.expr.types as ir

from tribes.engine import FILE_COLUMN, hmac_sha256_py, let, strip_nul, struct_to_json
from tribes.ingest.mapping import ColumnMapping
from tribes.ingest.parse import UTC, as_text, finite, parse_bool, parse_float, parse_ts, whole
from tribes.ingest.reader import ReadResult
from tribes.ingest.spec import KindSpec
from tribes.privacy import PSEUDONYM_LENGTH

# the targets that hold identifiers (pseudonymized), whatever the kind
ID_TARGETS = ("customer_id", "anonymous_id", "device_id", "session_id")

SEP = "\x1f"
NULL_MARK = "\x1e"  # NUL cannot travel in SQL text
PRE_REASON = "_pre_reason"
RECORD = "_rec"
REPEAT_KEY = "_h"

# Columns of a quarantined record read again (``tribes quarantine replay``, or the flat
# file ``quarantine export`` writes): which quarantine row it is, which of its source
# columns hold pseudonyms already (";a;b;"), and its key (see ``ingest.replay``). They
# are never source columns: not mapped, not in properties or the record text.
MARK_BATCH = "_tribes_batch"
MARK_KEY = "_tribes_key"
MARK_HASHED = "_tribes_hashed"
# shown to the person fixing the file; ignored when it is read back
MARK_INFO = ("_tribes_reason", "_tribes_message", "_tribes_kind", "_tribes_source")
MARKS = (MARK_BATCH, MARK_KEY, MARK_HASHED, *MARK_INFO)
# a value that is a pseudonym already: the pseudonym lookup takes it as it is
PSEUDONYM_MARK = "\x1dpid:"


@dataclass(frozen=True)
class StageOptions:
    source: str
    ts_format: str | None
    tz: str
    now: datetime
    future_limit: datetime
    min_ts: datetime
    key: bytes
    decimal: str = "."  # decimal mark of numbers written as text
    ts_guessed: bool = False  # ts_format was sniffed: ISO-8601 and epoch are read too


def bad_column(name: str) -> str:
    """Stage column holding the raw text of an unparseable value of ``name``."""
    return f"_bad_{name}"


def _text_col(name: str) -> str:
    return f"_t_{name}"


def _num_col(name: str) -> str:
    return f"_n_{name}"


def build_stage(read: ReadResult, spec: KindSpec, mapping: ColumnMapping,
                opts: StageOptions) -> ir.Table:
    """Every source record as one row of parsed target columns plus check results.

    Columns: the mapped targets (ids and categoricals as text awaiting pseudonymization
    and standardization, typed values parsed), ``_bad_<col>`` raw text of values that
    did not parse, ``properties`` (JSON of the other columns, personal data hashed or
    dropped), ``_rec`` (digest of the raw record), ``_file`` and ``_pre_reason``.

    The expression is built in layers separated by ``view()`` so that each parsed value
    is computed once per row and later layers refer to it by name (Ibis would otherwise
    inline, and so repeat, every sub-expression).
    """
    src = read.table
    typed = {"ts", "float", "int", "bool"}
    fields = [f for f in spec.fields if f.name in mapping.targets]
    marks = [m for m in (MARK_BATCH, MARK_KEY, MARK_HASHED) if m in src.columns]

    # layer 1: cleaned text of every mapped column; raw typed values kept as they are
    l1: dict[str, ir.Value] = {FILE_COLUMN: src[FILE_COLUMN]}
    l1.update({m: as_text(src[m].cast("string")) for m in marks})
    if read.valid_column is not None:
        l1[read.valid_column] = src[read.valid_column]
    for f in fields:
        raw = src[mapping.targets[f.name]]
        if f.kind == "id":
            l1[_text_col(f.name)] = mark_pseudonym(src, mapping.targets[f.name],
                                                   as_text(raw, trim=True))
        elif f.kind in typed and not raw.type().is_string():
            l1[f.name] = raw
        elif f.kind in ("snake", "place"):
            # few distinct values: cleaned and standardized in Python by the loader, and
            # written back into SQL as literals, which cannot hold a NUL
            l1[_text_col(f.name)] = strip_nul(raw.cast("string"))
        else:
            l1[_text_col(f.name)] = as_text(raw, trim=f.kind in ("id", "text"))
    # raw columns ride along so that properties and the record digest, costly per row,
    # are computed by derive() after the rows a pass needs have been filtered
    for i, c in enumerate(read.columns):
        l1[_raw_col(i)] = src[c]
    # hashing the columns as a struct is about twice as fast as hashing their concatenation
    l1[REPEAT_KEY] = ibis.struct({"f": src[FILE_COLUMN],
                                  **{f"c{i}": src[c] for i, c in enumerate(read.columns)}}).hash()
    t1 = src.select(**l1).view()

    # layer 2: parsed values
    carried = [FILE_COLUMN, REPEAT_KEY, *marks] + [_raw_col(i) for i in range(len(read.columns))]
    l2: dict[str, ir.Value] = {c: t1[c] for c in carried}
    if read.valid_column is not None:
        l2[read.valid_column] = t1[read.valid_column]
    for f in fields:
        text = t1[_text_col(f.name)] if _text_col(f.name) in t1.columns else None
        value = text if text is not None else t1[f.name]
        if f.kind in ("id", "text", "snake", "place"):
            # ids stay raw in this temporary stage: the loader pseudonymizes them once
            # per distinct value, before anything is written
            l2[f.name] = value
        else:
            if text is not None:
                l2[_text_col(f.name)] = text
            if f.kind == "ts":
                l2[f.name] = parse_ts(value, fmt=opts.ts_format, tz=opts.tz,
                                       fallback=opts.ts_guessed)
            elif f.kind == "bool":
                l2[f.name] = parse_bool(value)
            else:
                l2[_num_col(f.name)] = parse_float(value, decimal=opts.decimal)
    t2 = t1.select(**l2).view()

    # layer 3: numbers checked, unparseable values kept as text for the messages
    l3: dict[str, ir.Value] = {}
    dropped: list[str] = []
    for f in fields:
        if f.kind in ("float", "int"):
            number = finite(t2[_num_col(f.name)])
            l3[f.name] = number if f.kind == "float" else whole(number)
            dropped.append(_num_col(f.name))
        if f.kind in typed:
            tcol = _text_col(f.name)
            present = t2[tcol] if tcol in t2.columns else None
            parsed = l3.get(f.name, t2[f.name] if f.name in t2.columns else None)
            if present is not None and parsed is not None:
                l3[bad_column(f.name)] = _unparsed(parsed, present)
                dropped.append(tcol)
            else:
                l3[bad_column(f.name)] = ibis.null("string")
    # the required timestamp's text stays for layer 4, which judges the timestamp anew
    bound = _bound_ts(spec, t2)
    kept = [_text_col(bound)] if bound is not None and _text_col(bound) in t2.columns else []
    t3 = t2.mutate(**l3).drop(*[c for c in dropped if c not in kept]).view() if l3 else t2

    # layer 4: the first failing check names the reason. A filter on the reason is pushed
    # below the layers that parsed the values, and the engine repeats a parsed value's
    # whole expression at every check that names it: the required timestamp, named by
    # several, is parsed once for all of them as the argument of a lambda (let)
    def reason(ts: ir.Value | None) -> ir.StringValue:
        judged: dict[str, tuple[ir.Value, ir.Value]] = {}
        if bound is not None and ts is not None:
            text = t3[kept[0]] if kept else None
            judged[bound] = (ts, _unparsed(ts, text) if text is not None
                             else ibis.null("string"))
        return _reason(t3, read, spec, mapping, opts, judged)

    pre = let(t3[bound], reason) if bound is not None else reason(None)
    t4 = t3.mutate(**{PRE_REASON: pre}).drop(*kept)
    if read.valid_column is not None:
        t4 = t4.drop(read.valid_column)
    return t4


def _unparsed(parsed: ir.Value, text: ir.StringValue) -> ir.StringValue:
    """The text of a value that did not parse (null when it did, or when it is missing)."""
    return ibis.cases((parsed.isnull() & text.notnull(), text), else_=ibis.null("string"))


def _bound_ts(spec: KindSpec, t: ir.Table) -> str | None:
    """The required timestamp field of ``spec`` when ``t`` has it: the value several checks
    name."""
    return next((f.name for f in spec.fields
                 if f.kind == "ts" and f.required and f.name in t.columns), None)


def _reason(t: ir.Table, read: ReadResult, spec: KindSpec, mapping: ColumnMapping,
            opts: StageOptions, judged: dict[str, tuple[ir.Value, ir.Value]]
            ) -> ir.StringValue:
    """The first failing staged check of a row of ``t``, null when all pass. ``judged``:
    per field, its value and unparsed text to judge instead of the columns of ``t``."""
    def value(name: str) -> ir.Value:
        return judged[name][0] if name in judged else t[name]

    def unparsed(name: str) -> ir.Value:
        return judged[name][1] if name in judged else t[bad_column(name)]

    checks: list[tuple[ir.BooleanValue, str]] = []
    if read.valid_column is not None:
        checks.append((~t[read.valid_column], "E_MALFORMED"))
    ts_name = mapping.targets.get("ts")
    if ts_name is not None and bad_column("ts") in t.columns:
        # the header line again, inside the data (exports concatenated into one file):
        # its timestamp is the timestamp column's name (one test; a test of every column
        # makes Spark's plan explode, as every check is inlined into the messages)
        checks.append(((unparsed("ts").strip() == ts_name.strip()).fill_null(False),
                       "E_HEADER"))
    if spec.id_fields:
        no_id = ibis.literal(True)
        for c in spec.id_fields:
            if c in t.columns:
                no_id = no_id & t[c].isnull()
        checks.append((no_id, "E_NO_ID"))
    parts = [ibis.cases(*checks, else_=ibis.null("string"))] if checks else []
    parts.extend(_typed_reasons(spec, t, opts, value, unparsed))
    return (ibis.coalesce(*parts) if len(parts) > 1 else parts[0] if parts
            else ibis.null("string"))


def _typed_reasons(spec: KindSpec, t: ir.Table, opts: StageOptions,
                   value_of: Callable[[str], ir.Value], unparsed_of: Callable[[str], ir.Value]
                   ) -> list[ir.StringValue]:
    """Per typed field, in field order, its reason code (null when the value is fine);
    ``value_of`` and ``unparsed_of`` give a field's value and its unparsed text.

    A timestamp is judged by one range test first: a row in range, nearly all of them,
    goes no further; only the others are told apart.
    """
    reasons: list[ir.StringValue] = []
    null = ibis.null("string")
    for f in spec.fields:
        if f.name not in t.columns or f.kind in ("id", "text", "snake", "place"):
            continue
        value, bad = value_of(f.name), unparsed_of(f.name)
        if f.kind == "ts" and f.required:
            early = ibis.literal(opts.min_ts, type=UTC)
            late = ibis.literal(opts.future_limit, type=UTC)
            # the four reasons exclude each other, so their order here is free
            reasons.append(ibis.cases(
                (value.between(early, late), null),
                (bad.notnull(), "E_TS_PARSE"),
                (value.isnull(), "E_TS_MISSING"),
                (value > late, "E_TS_FUTURE"),
                else_="E_TS_RANGE",
            ))
        elif f.kind == "bool" and f.required:
            reasons.append(ibis.cases((value.isnull(), "E_CONSENT_VALUE"), else_=null))
        elif f.name == "amount":
            reasons.append(ibis.cases((bad.notnull(), "E_AMOUNT"), else_=null))
        elif f.name == "quantity":
            reasons.append(ibis.cases((bad.notnull(), "E_QUANTITY"), else_=null))
        else:
            reasons.append(ibis.cases((bad.notnull(), "E_VALUE"), else_=null))
    return reasons


def _raw_col(i: int) -> str:
    return f"_x_{i}"


def _to_hash(mapping: ColumnMapping) -> list[str]:
    """The personal-data source columns whose values are kept as pseudonyms."""
    return [c for c, action in mapping.pii.items() if action == "hash"]


def pii_texts(t: ir.Table, read: ReadResult, mapping: ColumnMapping) -> list[ir.StringValue]:
    """The cleaned text of every personal-data column to hash (``mapping.pii``), as the
    pseudonym lookup takes its values (see ``lookups.build_lookups``)."""
    return [mark_pseudonym(t, c, as_text(t[_raw_col(read.columns.index(c))]))
            for c in _to_hash(mapping)]


def mark_pseudonym(t: ir.Table, column: str, text: ir.StringValue) -> ir.StringValue:
    """``text`` (a value of source column ``column``), prefixed with
    :data:`PSEUDONYM_MARK` where the row says the column holds pseudonyms already and the
    value looks like one: a quarantined record read again is not hashed a second time.
    A value typed in by hand (a raw id) does not look like a pseudonym, and is hashed."""
    if MARK_HASHED not in t.columns:
        return text
    said = t[MARK_HASHED].cast("string").fill_null("").contains(f";{column};")
    looks = text.re_search(f"^[0-9a-f]{{{PSEUDONYM_LENGTH}}}$").fill_null(False)
    return ibis.ifelse(said & looks, PSEUDONYM_MARK + text, text)


def hashed_columns(mapping: ColumnMapping) -> list[str]:
    """The source columns whose values a stored record holds as pseudonyms: those of the
    id targets and the personal data kept hashed."""
    ids = [c for target, c in mapping.targets.items() if target in ID_TARGETS]
    return sorted({*ids, *_to_hash(mapping)})


def derive(t: ir.Table, read: ReadResult, mapping: ColumnMapping,
           pseudonyms: ir.Table | None, *, stored: bool = False) -> ir.Table:
    """Add ``properties`` and the raw record text ``_rec`` (never stored) from the carried
    raw columns. The raw columns stay: a finalizer may build its own text of the record
    around them (:func:`record_text`); whatever a query does not use, the engine never
    computes.

    ``pseudonyms`` (columns ``_raw``, ``_pid``; None only when there is nothing to hash)
    holds the pseudonym of every value of the personal-data columns to hash
    (:func:`pii_texts`): they are looked up, one HMAC per distinct value, instead of
    computed for every row.

    ``stored`` (quarantined rows) adds ``_stored``: the source record as the quarantine
    keeps it (:func:`stored_record`); it needs the id targets already pseudonymized
    (``lookups.apply``).
    """
    hashed: dict[str, ir.Value] = {}
    for i, (column, text) in enumerate(zip(_to_hash(mapping), pii_texts(t, read, mapping),
                                           strict=True)):
        assert pseudonyms is not None, "personal data to hash needs the pseudonym lookup"
        tc, rk, pk = f"_pii_{i}", f"_pii_raw_{i}", f"_pii_pid_{i}"
        t = t.mutate(**{tc: text})
        lookup = pseudonyms.select(**{rk: pseudonyms._raw, pk: pseudonyms._pid})
        t = t.left_join(lookup, t[tc] == lookup[rk]).drop(tc, rk)
        hashed[column] = t[pk]
    raw = {c: t[_raw_col(i)] for i, c in enumerate(read.columns)}
    values: dict[str, ir.Value] = {
        "properties": _properties(raw, mapping, hashed),
        RECORD: record_text(t),
    }
    if stored:
        values[STORED] = stored_record(t, raw, mapping, hashed)
    out = t.mutate(**values)
    return out.drop(*[f"_pii_pid_{i}" for i in range(len(hashed))])


STORED = "_stored"


def stored_record(t: ir.Table, raw: dict[str, ir.Value], mapping: ColumnMapping,
                  hashed: dict[str, ir.Value]) -> ir.StringValue:
    """The source record as JSON text by column name, every value as text: what replay
    reads again. Ids are their pseudonyms (the id targets of ``t``, already looked up),
    personal data its pseudonym (``hashed``) or left out, as in ``properties``."""
    ids = {c: t[target] for target, c in mapping.targets.items()
           if target in ID_TARGETS and target in t.columns}
    fields: dict[str, ir.Value] = {}
    for c, value in raw.items():
        if mapping.pii.get(c) == "drop":
            continue
        v = ids.get(c, hashed.get(c, value))
        fields[c] = v.cast("string")
    if not fields:
        return ibis.null("string")
    return struct_to_json(ibis.struct(fields))


def raw_columns(t: ir.Table) -> list[str]:
    """The carried raw source columns of ``t``, in the source's order."""
    return list(takewhile(lambda c: c in t.columns, map(_raw_col, count())))


def record_text(t: ir.Table, before: list[ir.Value] | None = None,
                after: list[ir.Value] | None = None) -> ir.StringValue:
    """The raw record as one text: all source columns, nulls marked, joined by ``SEP``,
    with ``before`` and ``after`` (never null) joined on the same way.

    Identical records have the same text. Derived event ids are the salted md5 of it
    (see ``finalize.load_events``), built in one piece: one string per row instead of a
    chain of copies. ``_h``, a fast 64-bit hash of file and raw columns, only finds
    candidate repeats: a collision merely sends a record to the exact numbering.
    """
    parts = [t[c].cast("string").fill_null(NULL_MARK) for c in raw_columns(t)]
    return ibis.literal(SEP).join([*(before or []), *parts, *(after or [])])


def _properties(src: dict[str, ir.Value], mapping: ColumnMapping,
                hashed: dict[str, ir.Value]) -> ir.StringValue:
    """JSON object of the source columns no target uses; personal data as its looked-up
    pseudonym (``hashed``) or dropped."""
    fields: dict[str, ir.Value] = {c: src[c] for c in mapping.extra}
    fields.update(hashed)
    if not fields:
        return ibis.null("string")
    # keys in name order: the same text whichever engine writes or re-reads the object
    return struct_to_json(ibis.struct(dict(sorted(fields.items()))))


def record_salt(key: bytes) -> str:
    """A secret derived from the workspace key that salts record digests."""
    return hmac_sha256_py("record-digest", key)
