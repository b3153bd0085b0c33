"""Repairing quarantined rows: replay them with new options, export them flat, drop them.

The quarantine keeps each row's source record by column name (ids and personal data as
their pseudonyms), which of its columns hold pseudonyms, and its record key (an event's
derived id). Replaying reads those records again as a source, through the same batch
code as files (:func:`tribes.ingest.loader.load_batch`), with the options of the batch
that quarantined them plus the new ones: pseudonyms are not hashed again and event ids
are the ones the original file gives, so a replay gives the events and identities that
ingesting the original file with the new options would have given. ``quarantine export``
writes the same records as a flat file with the same marker columns; ingesting that file
after fixing it by hand takes the same route.

Every quarantined row ends open, replayed (by the batch that read it again) or dropped
(with a reason), so that over all batches
``sum(rows_read - replayed) == sum(loaded + duplicates) + open + dropped``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.engine import FILE_COLUMN, Engine
from tribes.errors import InputError
from tribes.ingest.loader import (
    IngestOptions,
    IngestSummary,
    Progress,
    _Clock,
    load_batch,
    new_batch_id,
    resolve_quarantine,
)
from tribes.ingest.quarantine import matching, quarantined
from tribes.ingest.reader import ReadResult
from tribes.ingest.stage import MARK_BATCH, MARK_HASHED, MARK_KEY
from tribes.store import open_engine
from tribes.workspace import RunContext, Workspace

# the marker columns of a flat record, first in an export (see stage.MARKS)
_INFO = {"_tribes_reason": "reason", "_tribes_message": "message", "_tribes_kind": "kind",
         "_tribes_source": "source"}


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: one ingest batch per batch whose rows it read again."""

    batches: list[IngestSummary]
    selected: int  # open rows matching the filters
    not_replayable: dict[str, int]  # open rows without a stored record, by reason

    @property
    def replayed(self) -> int:
        return sum(s.replayed for s in self.batches)

    @property
    def loaded(self) -> int:
        return sum(s.loaded for s in self.batches)

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.batches)

    @property
    def still_quarantined(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.batches:
            for reason, n in s.quarantined.items():
                out[reason] = out.get(reason, 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"selected": self.selected, "replayed": self.replayed, "loaded": self.loaded,
                "duplicates": self.duplicates, "still_quarantined": self.still_quarantined,
                "not_replayable": self.not_replayable,
                "batches": [s.to_dict() for s in self.batches]}


def flat_records(engine: Engine, rows: ir.Table) -> pd.DataFrame:
    """Quarantine rows as a flat table a person can fix in a spreadsheet: the marker
    columns (``_tribes_batch``, ``_tribes_key``, ``_tribes_hashed``, then reason, message,
    kind and source to read), then every source column, values as text. Rows without a
    stored record (unparseable lines, erased people, rows from before replay) are left
    out."""
    df = engine.execute(rows.filter(rows.record.notnull()).select(
        "batch_id", "record_key", "hashed", "reason", "message", "kind", "source", "file",
        "record"))
    records = [json.loads(r) for r in df["record"]]
    columns: dict[str, None] = {}
    for r in records:
        columns.update(dict.fromkeys(r))
    out = pd.DataFrame({
        MARK_BATCH: df["batch_id"].astype(object), MARK_KEY: df["record_key"].astype(object),
        MARK_HASHED: df["hashed"].astype(object),
        **{mark: df[col].astype(object) for mark, col in _INFO.items()},
    })
    values = pd.DataFrame.from_records(
        [[r.get(c) for c in columns] for r in records], columns=list(columns), index=out.index)
    out = pd.concat([out, values.astype(object)], axis=1)
    out.attrs["files"] = df["file"].tolist()
    return out


def _read_from(engine: Engine, flat: pd.DataFrame, name: str) -> ReadResult:
    """``flat`` records (:func:`flat_records`) as a source to load, every column text."""
    data = flat.assign(**{FILE_COLUMN: flat.attrs["files"]})
    schema = {c: "string" for c in data.columns}
    table = engine.create_temp(name, ibis.memtable(data, schema=schema))
    return ReadResult(table=table, columns=[c for c in flat.columns], label="the quarantine")


def _batch_options(engine: Engine, batch_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    b = engine.table("batches")
    rows = engine.execute(b.filter(b.batch_id == batch_id).select("options", "mapping"))
    if rows.empty:
        return {}, {}
    return json.loads(rows["options"][0] or "{}"), json.loads(rows["mapping"][0] or "{}")


def replay_options(kind: str, source: str, stored: dict[str, Any], mapping: dict[str, str],
                   new: IngestOptions) -> IngestOptions:
    """The options to read a batch's records again: the batch's own, then ``new``'s.

    A target the new mapping names replaces the old one, and a source column it takes
    leaves the target it fed before."""
    taken = set(new.mapping.values())
    merged = {t: c for t, c in mapping.items() if t not in new.mapping and c not in taken}
    merged |= new.mapping
    return IngestOptions(
        kind=kind, source=source, mapping=merged,
        event_type=new.event_type or stored.get("event_type"),
        ts_format=new.ts_format or stored.get("ts_format"),
        ts_guessed=not new.ts_format and bool(stored.get("ts_guessed")),
        tz=new.tz or stored.get("tz"), decimal=new.decimal or stored.get("decimal"),
        now=new.now, check_volume=False, aliases=new.aliases, missing=new.missing,
    )


def replay_quarantined(ctx: RunContext, new: IngestOptions, *, reason: str | None = None,
                       batch: str | None = None, source: str | None = None,
                       progress: Progress | None = None) -> ReplayResult:
    """Read the open quarantined rows matching the filters again, one batch per batch
    that quarantined them, with that batch's options overridden by ``new`` (its mapping,
    event type, timestamp format and zone, decimal mark, event type aliases and
    missing-value policies; its kind and source are the batch's)."""
    engine = ctx.engine
    q = quarantined(engine, reason=reason, batch=batch, source=source)
    selected = int(engine.scalar(q.count()))
    lost = q.filter(q.record.isnull())
    not_replayable = {str(r): int(n) for r, n in engine.execute(
        lost.group_by("reason").aggregate(n=lost.count())).itertuples(index=False)}
    kept = q.filter(q.record.notnull())
    todo = engine.execute(kept.group_by(["batch_id", "kind", "source"])
                          .aggregate(n=kept.count()).order_by("batch_id"))
    summaries = []
    for row in todo.itertuples(index=False):
        summaries.append(_replay_batch(ctx, str(row.batch_id), str(row.kind), str(row.source),
                                       new, reason=reason, progress=progress))
    return ReplayResult(summaries, selected, not_replayable)


def _replay_batch(ctx: RunContext, batch_id: str, kind: str, source: str,
                  new: IngestOptions, *, reason: str | None, progress: Progress | None
                  ) -> IngestSummary:
    clock = _Clock(progress)
    now = new.now or datetime.now(UTC)
    replay_id = new_batch_id(now)
    engine = ctx.engine
    clock.say("reading the quarantine")
    stored, mapping = _batch_options(engine, batch_id)
    opts = replay_options(kind, source, stored, mapping, replace(new, now=now))
    rows = quarantined(engine, reason=reason, batch=batch_id, kind=kind)
    flat = flat_records(engine, rows)
    read = _read_from(engine, flat, "_tribes_replay")
    summary = load_batch(ctx.ws, engine, read, opts, clock, batch_id=replay_id,
                         files=[f"quarantine:{batch_id}"])
    return clock.done(summary)


def drop_quarantined(ws: Workspace, why: str, *, reason: str | None = None,
                     batch: str | None = None, source: str | None = None,
                     now: datetime | None = None) -> int:
    """Give up the open quarantined rows matching the filters: they stay, marked dropped
    with ``why``, and count as dropped in the accounting. Returns how many."""
    if not why.strip():
        raise InputError("say why the rows are dropped (--why)", code="E_DROP")
    now = now or datetime.now(UTC)
    with open_engine(ws) as engine:
        q = engine.table("quarantine")
        hit = matching(q, reason=reason, batch=batch, source=source)
        n = int(engine.scalar(q.filter(hit).count()))
        if n:
            with engine.transaction():
                resolve_quarantine(engine, hit, "dropped", by="drop", now=now,
                                   note=why.strip())
                engine.audit("quarantine.drop", rows=n, detail={
                    "why": why.strip(), "reason": reason, "batch": batch, "source": source})
    return n
