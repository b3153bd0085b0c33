"""Ingest: read sources, validate, quarantine, dedupe and load, one transaction per batch.

Every input record is counted exactly once: ``loaded``, ``duplicates`` or quarantined
under a reason code. A batch that fails part-way leaves the workspace as it was.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import FILE_COLUMN, Engine, clear_spool, spool_dir
from tribes.errors import ConfigError, InputError
from tribes.ingest.checks import (
    REASON,
    impute,
    message,
    missing_policy,
    post_checks,
    raw_json,
    with_reason,
)
from tribes.ingest.finalize import FINALIZERS, KEYERS, RECORD_KEY, Batch, with_record_key
from tribes.ingest.lookups import BatchProfile, build_lookups, profile_batch
from tribes.ingest.mapping import ColumnMapping, resolve_mapping
from tribes.ingest.reader import ReadResult, read_csv, read_jsonl, read_parquet, spool
from tribes.ingest.sniff import cut_short
from tribes.ingest.sources import resolve_inputs
from tribes.ingest.spec import KINDS, KindSpec
from tribes.ingest.stage import (
    MARK_BATCH,
    MARK_HASHED,
    MARK_KEY,
    MARKS,
    REPEAT_KEY,
    SEP,
    STORED,
    StageOptions,
    build_stage,
    derive,
    hashed_columns,
    pii_texts,
)
from tribes.ingest.standardize import canonical_event_type, unmatched_report
from tribes.ingest.textfiles import memory_scratch
from tribes.ingest.tsformat import SAMPLE, TsGuess, guess_ts_format
from tribes.workspace import RunContext, Workspace

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
FAULT_ENV = "TRIBES_FAULT_AT"  # test hook: "<step>:raise" or "<step>:kill"
SOURCE_VIEW = "src"  # the name the readers register the input files under


@dataclass(frozen=True)
class IngestOptions:
    """What to ingest and how to read it (the CLI's ``ingest`` options)."""

    kind: str = "events"
    source: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    event_type: str | None = None
    ts_format: str | None = None
    tz: str | None = None
    fmt: str | None = None
    # how text files are written; None: sniffed from the first file (see ingest.sniff)
    delimiter: str | None = None
    encoding: str | None = None
    header: bool | None = None
    decimal: str | None = None  # decimal mark of numbers in text: "." or ","
    now: datetime | None = None
    # data-quality checks judge the batch's size against the source's history (not for
    # micro-batches); see tribes.monitor.quality.check_ingest
    check_volume: bool = True
    # ts_format was sniffed (ISO-8601 and epoch are read too): how a replay reads a batch
    ts_guessed: bool = False
    # event type aliases and missing-value policies on top of the configuration's
    aliases: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestSummary:
    batch_id: str
    kind: str
    source: str
    files: list[str]
    rows_read: int
    loaded: int
    duplicates: int
    quarantined: dict[str, int]
    mapping: dict[str, str]
    missing: dict[str, dict[str, Any]]
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)  # seconds spent in each step
    # how text files were read (delimiter, encoding, header, decimal; which were sniffed)
    # and what the reader had to do about them (mixed line endings, Latin-1 found late)
    read: dict[str, Any] = field(default_factory=dict)
    # data-quality breaches, filled in by the caller's checks (tribes.monitor.quality)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # what would load the quarantined rows (a column that looks like the missing one)
    hints: list[str] = field(default_factory=list)
    # rows (among the duplicates) that an earlier batch already quarantined as they are
    already_quarantined: int = 0
    # rows that read quarantined rows again (a replay, a fixed export): those rows are
    # resolved, and count here, not as new rows read
    replayed: int = 0
    # per place column (country, region, city): its distinct values the reference data
    # does not know, a few of them and how to map them (standardize.unmatched_report)
    unmatched: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def quarantined_share(self) -> float:
        return self.n_quarantined / self.rows_read if self.rows_read else 0.0

    @property
    def n_quarantined(self) -> int:
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fault(step: str) -> None:
    """Simulate a crash at ``step`` when the test hook asks for it."""
    want = os.environ.get(FAULT_ENV, "")
    if want.partition(":")[0] != step:
        return
    if want.endswith(":kill"):
        os._exit(137)
    raise RuntimeError(f"fault injected at {step}")


def new_batch_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def open_source(engine: Engine, files: list[Path], fmt: str, opts: IngestOptions,
                scratch: Path | None = None) -> ReadResult:
    """The input files as a table; ``scratch`` holds copies a text reader may need."""
    if fmt == "csv":
        return read_csv(engine, files, delimiter=opts.delimiter, encoding=opts.encoding,
                        header=opts.header, decimal=opts.decimal, scratch=scratch)
    if fmt == "parquet":
        return read_parquet(engine, files)
    # a file of empty objects alone still reads as records (each is quarantined)
    return read_jsonl(engine, files, scratch=scratch, empty_keys=KINDS[opts.kind].names)


def _default_source(files: list[Path], kind: str) -> str:
    if kind != "events":
        return kind
    stem = files[0].name.split(".")[0]
    stem = stem.rstrip("0123456789-_") or stem
    return stem.lower() or "events"


def ingest(ctx: RunContext, inputs: list[str], opts: IngestOptions,
           progress: Progress | None = None) -> IngestSummary:
    """Ingest files into the workspace as one batch.

    Parameters
    ----------
    ctx
        The workspace (its secret key pseudonymizes identifiers) and its open engine.
    inputs
        Files, globs or directories of one format.
    opts
        Kind, source name, column mapping and parsing options.
    progress
        Called with the name of each step as it starts.

    Returns
    -------
    IngestSummary
        Counts per outcome; ``rows_read == loaded + duplicates + sum(quarantined)``.
    """
    clock = _Clock(progress)
    _check_options(opts)
    files, fmt = resolve_inputs(inputs, opts.fmt)
    # a compressed file cut short reads as if it ended there: it is decompressed to its
    # end on a thread meanwhile, and the batch stops before anything is stored if not
    whole = concurrent.futures.ThreadPoolExecutor(1, "tribes-whole").submit(cut_short, files)
    batch_id = new_batch_id(opts.now or datetime.now(UTC))
    ws, engine = ctx.ws, ctx.engine
    with contextlib.ExitStack() as stack:
        # the copies a text file may need hold its raw values: an encrypted workspace
        # makes them in memory only
        scratch = (stack.enter_context(memory_scratch()) if engine.encrypted
                   else spool_dir(ws.path))
        clock.say("reading")
        try:
            read = open_source(engine, files, fmt, opts, scratch=scratch)
        except InputError as exc:
            if exc.code == "E_READ":
                _check_whole(whole)  # a file cut short is the cause to tell
            raise

        def settle(read: ReadResult) -> ReadResult:
            # the stage is scanned a few times (profile, quarantine, load) rather than
            # copied into a table; text formats are first parsed once into a Parquet
            # spool file, which later passes scan cheaply (it holds raw values: deleted
            # after the batch, and at the next open of the workspace if the process died)
            if fmt != "parquet":
                clock.say("parsing")
                read = spool(engine, read, spool_dir(ws.path) / f"spool-{batch_id}.parquet")
            _check_whole(whole)
            return read

        summary = load_batch(ws, engine, read, opts, clock, batch_id=batch_id,
                             files=[str(f) for f in files], settle=settle)
        clear_spool(ws.path)
    return clock.done(summary)


class _Clock:
    """Seconds per step of a batch, and the progress callback told of each step."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.started = time.perf_counter()
        self.steps: dict[str, float] = {}
        self.current: tuple[str | None, float] = (None, self.started)

    def say(self, step: str | None) -> None:
        t = time.perf_counter()
        name, since = self.current
        if name is not None:
            self.steps[name] = round(self.steps.get(name, 0.0) + t - since, 3)
        self.current = (step, t)
        if step is not None and self.progress is not None:
            self.progress(step)

    def done(self, summary: IngestSummary) -> IngestSummary:
        self.say(None)
        seconds = round(time.perf_counter() - self.started, 3)
        return replace(summary, seconds=seconds, steps=dict(self.steps))


def _check_options(opts: IngestOptions) -> None:
    if opts.kind not in KINDS:
        raise InputError(f"unknown kind '{opts.kind}'; use one of {', '.join(KINDS)}",
                         code="E_KIND")
    if opts.decimal not in (None, ".", ","):
        raise InputError(f"decimal mark '{opts.decimal}' is not supported; use '.' or ','",
                         code="E_DECIMAL")


# the columns of a quarantine export written before exports were flat (a JSON ``raw``)
_OLD_EXPORT = {"batch_id", "reason", "message", "raw", "quarantined_at"}


def load_batch(ws: Workspace, engine: Engine, read: ReadResult, opts: IngestOptions,
               clock: _Clock, *, batch_id: str, files: list[str],
               settle: Callable[[ReadResult], ReadResult] | None = None) -> IngestSummary:
    """Validate, quarantine, dedupe and load one source ``read`` as batch ``batch_id``.

    ``settle`` is applied to the read once its columns are known to map (a text file is
    parsed into a spool file there). A read with the columns of a quarantined record
    (``stage.MARKS``: a replay, or a file ``quarantine export`` wrote) keeps its
    pseudonyms and record keys, and the quarantine rows it reads again are resolved.
    """
    _check_options(opts)
    if set(read.columns) >= _OLD_EXPORT:
        raise InputError(
            "this file is a quarantine export in the old layout: its ids are pseudonyms "
            "already and its rows sit in a JSON 'raw' column, so ingesting it would hash "
            "the ids again and split customers. Load quarantined rows with: tribes "
            "quarantine replay [--reason CODE] [--map ...], or export them again (flat) "
            "with: tribes quarantine export --out FILE", code="E_QUARANTINE_EXPORT")
    marked = MARK_BATCH in read.columns and MARK_KEY in read.columns
    read = replace(read, columns=[c for c in read.columns if c not in MARKS])
    spec = KINDS[opts.kind]
    cfg = ws.config
    key = ws.secret()
    now = opts.now or datetime.now(UTC)
    source = (opts.source or _marked_source(engine, read)
              or _default_source([Path(f) for f in files], opts.kind)).strip()
    policies = missing_policy(spec, {**cfg.missing.get(spec.kind, {}), **opts.missing})
    aliases = {**cfg.ingest.event_type_aliases, **opts.aliases}
    whitelist = [canonical_event_type(v, {}) or v for v in cfg.ingest.event_types]
    try:
        min_ts = datetime.fromisoformat(cfg.ingest.min_ts).replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"ingest.min_ts '{cfg.ingest.min_ts}' is not an ISO date",
                          code="E_CONFIG") from None
    stage_opts = StageOptions(
        source=source, ts_format=opts.ts_format, tz=opts.tz or cfg.ingest.default_tz, now=now,
        future_limit=now + cfg.ingest.future_tolerance, min_ts=min_ts, key=key,
        ts_guessed=bool(opts.ts_format and opts.ts_guessed),
    )
    _check_tz(stage_opts.tz)
    constants = {"event_type"} if opts.event_type and spec.kind == "events" else set()
    try:
        mapping = resolve_mapping(read.columns, spec, opts.mapping, cfg.privacy.pii_columns,
                                  constant_targets=constants)
    except InputError as exc:
        raise _with_layout_hint(exc, read, opts.mapping) from None
    for target, column in mapping.targets.items():
        log.info("mapping %s <- %s%s", target, column,
                 " (auto)" if target in mapping.auto else "")
    if settle is not None:
        read = settle(read)
    decimal = opts.decimal or (read.dialect.decimal if read.dialect else ".")
    stage_opts = replace(stage_opts, decimal=decimal)
    guess = TsGuess()
    if opts.ts_format is None and "ts" in mapping.targets:
        guess = _guess_ts_format(engine, read, mapping.targets["ts"])
        if guess.fmt:
            stage_opts = replace(stage_opts, ts_format=guess.fmt, ts_guessed=True)
    stage = build_stage(read, spec, mapping, stage_opts)
    if spec.kind == "events":
        stage = stage.mutate(source=ibis.literal(source))
    clock.say("scanning")
    profile = profile_batch(engine, stage, spec, mapping, REPEAT_KEY)
    lookups = build_lookups(engine, stage, profile, spec, mapping, key,
                            user_maps=cfg.standardize, aliases=aliases,
                            event_type=opts.event_type,
                            pii=pii_texts(stage, read, mapping), marked=marked)
    n_stage, repeated = profile.rows, find_repeats(engine, stage, profile)
    with engine.transaction():
        drop_cols = [c for c, p in policies.items() if p == "drop"]
        keep_unpriced = policies.get("amount", "drop") != "drop"
        checked = with_reason(stage, post_checks(stage, spec, lookups, whitelist, drop_cols,
                                                 keep_unpriced),
                              erased=lookups.is_erased(stage))
        _fault("staged")
        batch = Batch(engine=engine, mapping=mapping, key=key, batch_id=batch_id, now=now,
                      repeated=repeated)
        # the quarantine rows this read reads again are resolved before it quarantines
        # anything: a row that fails again is held anew, under this batch
        replayed = resolve_replayed(engine, stage, spec.kind, batch_id, now) if marked else 0
        clock.say("quarantining")
        bad = checked.filter(checked[REASON].notnull())
        bad = derive(lookups.apply(bad), read, mapping, lookups.ids, stored=True)
        bad = with_record_key(batch, bad, spec.kind)
        _quarantine(engine, bad, batch_id, spec, source, now, stage_opts, whitelist,
                    read.invalid_message, hashed_columns(mapping))
        malformed = read.malformed()
        _quarantine_malformed(engine, malformed, batch_id, spec, source, now)
        quarantined = _quarantine_counts(engine, batch_id)
        held = _drop_held(engine, batch_id) if quarantined else 0
        if held:
            quarantined = _quarantine_counts(engine, batch_id)
        n_good = n_stage + len(malformed) - sum(quarantined.values())
        good = checked.filter(checked[REASON].isnull())
        good = derive(good, read, mapping, lookups.ids)
        if spec.kind in KEYERS:
            good = KEYERS[spec.kind](batch, good)
        good = lookups.apply(good)
        # an amount is expected of purchases only
        expects = ({"amount": (good.event_type == "purchase").fill_null(False)}
                   if "event_type" in good.columns else {})
        fills, missing_report = impute(engine, good, policies,
                                       engine.table(spec.table).schema(), expects)
        if fills:
            good = good.mutate(**fills)
        clock.say("loading")
        loaded = FINALIZERS[spec.kind](batch, good)
        _fault("loaded")
        summary = IngestSummary(
            batch_id=batch_id, kind=spec.kind, source=source, files=files,
            rows_read=n_stage + len(malformed), loaded=loaded, duplicates=n_good - loaded,
            quarantined=quarantined, mapping=mapping.describe(),
            missing=missing_report, seconds=0.0, read=_read_report(read, guess),
            hints=hints(quarantined, mapping), already_quarantined=held, replayed=replayed,
            unmatched=unmatched_report(lookups.unmatched),
        )
        sniffed = {"ts_format": guess.fmt, "ts_guessed": True} if guess.fmt else {}
        _record_batch(engine, summary, now, replace(opts, source=source), sniffed)
        engine.audit("ingest", target=batch_id, rows=loaded, detail={
            "kind": spec.kind, "source": source, "files": len(files),
            "rows_read": summary.rows_read, "duplicates": summary.duplicates,
            "quarantined": quarantined, "replayed": replayed})
        _fault("recorded")
    clock.say("cleaning up")
    engine.drop_temps("_tribes_")
    engine.drop_temp(SOURCE_VIEW)  # a long-lived engine (the service) must not keep it
    return summary


def _marked_source(engine: Engine, read: ReadResult) -> str | None:
    """The source named by the rows of a quarantine export, when they name one."""
    column = "_tribes_source"
    if column not in read.table.columns:
        return None
    t = read.table
    values = engine.execute(t.select(s=t[column]).filter(t[column].notnull()).distinct()
                            .limit(2))["s"].tolist()
    return str(values[0]) if len(values) == 1 else None


def resolve_replayed(engine: Engine, stage: ir.Table, kind: str, batch_id: str,
                     now: datetime) -> int:
    """Mark the open quarantine rows that ``stage`` reads again (by the batch and record
    key its marks name) as replayed by ``batch_id``; return how many."""
    marks = stage.select(b=stage[MARK_BATCH], k=stage[MARK_KEY])
    marks = marks.filter(marks.b.notnull() & marks.k.notnull()).distinct()
    pairs = engine.create_temp("_tribes_replayed", marks.select(p=marks.b + SEP + marks.k))
    q = engine.table("quarantine")
    hit = (q.status.isnull() & (q.kind == kind) & q.record_key.notnull()
           & (q.batch_id + SEP + q.record_key).isin(pairs.p))
    n = int(engine.scalar(q.filter(hit).count()))
    if n:
        resolve_quarantine(engine, hit, "replayed", by=batch_id, now=now)
    return n


def resolve_quarantine(engine: Engine, hit: ir.BooleanValue, status: str, *, by: str,
                       now: datetime, note: str | None = None) -> None:
    """Set the quarantine rows ``hit`` selects (an expression on the table) to ``status``
    (replayed, dropped), when, by whom, and why."""
    q = engine.table("quarantine")
    hit = hit.fill_null(False)
    when = ibis.literal(now, type="timestamp('UTC')")
    engine.replace_table("quarantine", q.mutate(
        status=ibis.ifelse(hit, ibis.literal(status), q.status),
        resolved_at=ibis.ifelse(hit, when, q.resolved_at),
        resolved_by=ibis.ifelse(hit, ibis.literal(by), q.resolved_by),
        note=ibis.ifelse(hit, ibis.literal(note, type="string"), q.note),
    ))


# words of a column name that say it holds money
MONEY_WORDS = ("amount", "value", "price", "revenue", "total", "sales", "dollar", "dollars",
               "usd", "eur", "gbp", "cost", "spend", "spent", "paid", "payment", "sum",
               "turnover", "subtotal")


def money_like(columns: Sequence[str]) -> list[str]:
    """Source columns whose name says money (``dollar_value``, ``transactionValue``)."""
    out = []
    for c in columns:
        words = re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", c).lower())
        if any(w in MONEY_WORDS for w in words):
            out.append(c)
    return out


def hints(quarantined: dict[str, int], mapping: ColumnMapping) -> list[str]:
    """What would load rows this batch quarantined for a column it could not find."""
    out = []
    n = quarantined.get("E_AMOUNT", 0)
    if n and "amount" not in mapping.targets:
        found = money_like(mapping.extra)
        if found:
            out.append(f"{n:,} rows were quarantined as purchases without an amount, and no "
                       f"column was taken as the amount; '{found[0]}' looks like it: ingest "
                       f"again with --map amount={found[0]}")
        else:
            out.append(f"{n:,} rows were quarantined as purchases without an amount, and no "
                       "column was taken as the amount: map the column that holds the "
                       "order value with --map amount=COLUMN")
    return out


def _check_whole(whole: concurrent.futures.Future[str | None]) -> None:
    problem = whole.result()
    if problem is not None:
        raise InputError(problem, code="E_TRUNCATED")


def _read_report(read: ReadResult, guess: TsGuess) -> dict[str, Any]:
    report: dict[str, Any] = read.dialect.describe() if read.dialect is not None else {}
    if guess.fmt:
        report["ts_format"] = guess.fmt
    notes = [*read.notes, *filter(None, [guess.note()])]
    if notes:
        report["notes"] = notes
    return report


def _guess_ts_format(engine: Engine, read: ReadResult, column: str) -> TsGuess:
    """The format of the text timestamps in ``column``, judged on its first values."""
    value = read.table[column]
    if not value.type().is_string():
        return TsGuess()
    first = read.table.select(v=value).filter(value.notnull()).limit(SAMPLE)
    return guess_ts_format([str(v) for v in engine.execute(first)["v"]])


def _with_layout_hint(exc: InputError, read: ReadResult, explicit: dict[str, str]) -> InputError:
    """A column error, plus what may be wrong with how the text file was read."""
    d = read.dialect
    if d is None or exc.code not in ("E_MISSING_COLUMN", "E_MAP"):
        return exc
    hint = ""
    other = next((c for c in ",;\t|" if read.columns and c in read.columns[0]), None)
    if len(read.columns) == 1 and other is not None:
        shown = {"\t": "tab"}.get(other, other)
        hint = (f"; the file was split on '{d.describe()['delimiter']}' into one column: "
                f"is the delimiter '{shown}'? pass --delimiter '{shown}'")
    elif not d.header and exc.code == "E_MISSING_COLUMN":
        how = ("its first line holds data, not column names, so" if "header" in d.sniffed
               else "with --no-header")
        hint = (f"; {how} the columns are named column0, column1...; pass --header if the "
                "first line holds names")
    elif d.header and any(re.fullmatch(r"column\d+", c) for c in explicit.values()):
        hint = ("; columns are named by the file's header line; pass --no-header to name "
                "them column0, column1...")
    if not hint:
        return exc
    return type(exc)(exc.message + hint, code=exc.code)


def _check_tz(tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone '{tz}'; use an IANA name such as Europe/Paris",
                         code="E_TZ") from None


def find_repeats(engine: Engine, stage: ir.Table, profile: BatchProfile) -> ir.Table | None:
    """The repeat keys of records that occur more than once in a file, or None.

    The profile settles the usual case (as many distinct keys as rows); only when there
    are repeats does a second scan list them, into a small temporary table.
    """
    if profile.rows == profile.distinct_records:
        return None
    counts = stage.group_by(REPEAT_KEY).aggregate(_n=stage.count())
    repeated = counts.filter(counts._n > 1).select(REPEAT_KEY)
    return engine.create_temp("_tribes_repeated", repeated)


def _quarantine_counts(engine: Engine, batch_id: str) -> dict[str, int]:
    q = engine.table("quarantine")
    q = q.filter(q.batch_id == batch_id)
    df = engine.execute(q.group_by("reason").aggregate(n=q.count()).order_by("reason"))
    return {str(r): int(n) for r, n in zip(df["reason"], df["n"], strict=True)}


def _drop_held(engine: Engine, batch_id: str) -> int:
    """Remove the batch's quarantined rows that an earlier batch holds, unresolved, as
    they are (same kind, source, reason and record) and return how many: a file ingested
    again quarantines its bad rows once. Erased rows keep no record to compare, and stay."""
    q = engine.table("quarantine")

    def key(t: ir.Table) -> ir.StringValue:
        return t.kind + "\x1f" + t.source + "\x1f" + t.reason + "\x1f" + t.raw

    old = q.filter((q.batch_id != batch_id) & q.status.isnull())
    held = (q.batch_id == batch_id) & key(q).isin(old.select(k=key(old)).k)
    n = int(engine.scalar(q.filter(held).count()))
    if n:
        engine.delete_where("quarantine", held)
    return n


def _quarantine(engine: Engine, bad: ir.Table, batch_id: str, spec: KindSpec, source: str,
                now: datetime, opts: StageOptions, whitelist: list[str],
                invalid_message: str, hashed: list[str]) -> None:
    erased = bad[REASON] == "E_ERASED"
    hashed_text: ir.StringValue = ibis.literal(";" + "".join(f"{c};" for c in hashed))
    if MARK_HASHED in bad.columns:  # read again: what was hashed then, and what is now
        hashed_text = bad[MARK_HASHED].coalesce(";") + "".join(f"{c};" for c in hashed)
    null = ibis.null("string")
    rows = bad.select(
        batch_id=ibis.literal(batch_id),
        kind=ibis.literal(spec.kind),
        source=ibis.literal(source),
        file=bad[FILE_COLUMN],
        reason=bad[REASON],
        message=message(bad, opts.ts_format, whitelist, malformed=invalid_message,
                        ts_guessed=opts.ts_guessed),
        # nothing of an erased person's row is kept, not even pseudonymized
        raw=ibis.ifelse(erased, null, raw_json(bad, spec)),
        quarantined_at=ibis.literal(now, type="timestamp('UTC')"),
        record=ibis.ifelse(erased, null, bad[STORED]),
        hashed=ibis.ifelse(erased, null, hashed_text),
        record_key=ibis.ifelse(erased, null, bad[RECORD_KEY]),
        status=null, resolved_at=ibis.null("timestamp('UTC')"), resolved_by=null, note=null,
    )
    engine.insert("quarantine", rows)


def _quarantine_malformed(engine: Engine, malformed: list[dict[str, Any]], batch_id: str,
                          spec: KindSpec, source: str, now: datetime) -> None:
    if malformed:
        # the line itself is not kept: it cannot be parsed, so its ids cannot be hashed
        records = [
            {"batch_id": batch_id, "kind": spec.kind, "source": source, "file": m["file"],
             "reason": "E_MALFORMED", "message": f"line {m['line']}: {m['error']}",
             "raw": json.dumps({"file": m["file"], "line": int(m["line"])}),
             "quarantined_at": now, "record": None, "hashed": None, "record_key": None,
             "status": None, "resolved_at": None, "resolved_by": None, "note": None}
            for m in malformed
        ]
        schema = engine.table("quarantine").schema()
        engine.insert("quarantine", ibis.memtable(records, schema=schema))


def _record_batch(engine: Engine, s: IngestSummary, now: datetime, opts: IngestOptions,
                  sniffed: dict[str, Any]) -> None:
    options = {k: v for k, v in asdict(opts).items() if k not in ("now", "mapping") and v}
    options |= sniffed  # what replay must read its rows with, as this batch did
    row = {
        "batch_id": s.batch_id, "kind": s.kind, "source": s.source,
        "files": json.dumps(s.files), "started_at": now,
        "finished_at": datetime.now(UTC), "rows_read": s.rows_read, "loaded": s.loaded,
        "duplicates": s.duplicates, "quarantined": s.n_quarantined,
        "reasons": json.dumps(s.quarantined), "mapping": json.dumps(s.mapping),
        "missing": json.dumps(s.missing, default=str), "options": json.dumps(options, default=str),
        "replayed": s.replayed,
    }
    schema = engine.table("batches").schema()
    engine.insert("batches", ibis.memtable([row], schema=schema))
