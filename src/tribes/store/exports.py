"""Exports of workspace tables, with consent applied (DESIGN §6), and the exports index.

An export is either a file written where the user asked (``tribes export --out``), or,
for the service, a snapshot kept in the workspace database (``export_<id>`` tables:
encrypted when the database is) and written out in memory when it is downloaded. The
index (``exports``, ``export_members``) records both, so an erasure can reach them.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.privacy import consent_filter
from tribes.store.keyed import keyed_consents
from tribes.store.segments import active_segments
from tribes.store.tables import EXPORTS as EXPORTS_SCHEMA
from tribes.workspace import RunContext

# what -> (table, the stage that builds it)
EXPORTABLE = {"features": ("customer_features", "tribes features"),
              "sessions": ("sessions", "tribes prep"),
              "segments": ("segment_assignments", "tribes segment"),
              "clv": ("clv", "tribes clv fit, then tribes clv score")}
SNAPSHOT_PREFIX = "export_"  # tables holding the service's exports
IN_WORKSPACE = "table:"  # an index path naming such a table instead of a file
MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def _source(ctx: RunContext, what: str) -> ir.Table:
    engine = ctx.engine
    table, stage = EXPORTABLE[what]
    if not engine.has_table(table) or not int(engine.scalar(engine.table(table).count())):
        raise InputError(f"nothing to export: '{table}' is empty; build it with: {stage}",
                         code="E_EMPTY")
    t: ir.Table = engine.table(table)
    if what == "segments":
        t = active_segments(engine)
    return consent_filter(t, "customer_key", keyed_consents(engine),
                          ctx.settings.consent_mode)


def _new_id(now: datetime) -> str:
    return "x" + now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _index(engine: Engine, export_id: str, what: str, path: str, fmt: str, n: int,
           t: ir.Table, now: datetime) -> None:
    row = {"export_id": export_id, "what": what, "path": path, "format": fmt, "rows": n,
           "created_at": now}
    engine.insert("exports", ibis.memtable([row], schema=EXPORTS_SCHEMA))
    # which customers it holds: an erasure then reaches it
    engine.insert("export_members", t.select(
        export_id=ibis.literal(export_id), customer_key=t.customer_key).distinct())
    engine.audit("export", target=path, rows=n,
                 detail={"what": what, "format": fmt, "export_id": export_id})


def export_table(ctx: RunContext, what: str, path: Path, fmt: str) -> int:
    """Write ``what`` to the file ``path``; returns the number of rows written."""
    engine = ctx.engine
    t = _source(ctx, what)
    n = engine.write_table(t, path, fmt)
    now = datetime.now(UTC)
    with engine.transaction():
        _index(engine, _new_id(now), what, str(path.resolve()), fmt, n, t, now)
    return n


def snapshot_export(ctx: RunContext, what: str, fmt: str) -> dict[str, object]:
    """Keep ``what`` as it is now in the workspace (the service's exports): returns the
    index row (``export_id``, ``rows``...). :func:`render_export` writes it out."""
    engine = ctx.engine
    t = _source(ctx, what)
    now = datetime.now(UTC)
    export_id = _new_id(now)
    name = SNAPSHOT_PREFIX + export_id.lower().replace("-", "_")
    with engine.transaction():
        kept = engine.replace_table(name, t)
        n = int(engine.scalar(kept.count()))
        _index(engine, export_id, what, IN_WORKSPACE + name, fmt, n, kept, now)
    return {"export_id": export_id, "what": what, "format": fmt, "rows": n,
            "file": f"{what}-{now:%Y%m%dT%H%M%S}.{fmt}"}


@dataclass(frozen=True)
class Rendered:
    content: bytes
    filename: str
    media_type: str
    rows: int


def render_export(engine: Engine, export_id: str) -> Rendered:
    """An export of the index as the bytes of its file: a snapshot written out in memory,
    or the file an earlier version wrote."""
    x = engine.table("exports")
    rows = engine.execute(x.filter(x.export_id == export_id)).to_dict("records")
    if not rows:
        raise InputError(f"no export '{export_id}'", code="E_EXPORT")
    row = rows[0]
    fmt, where = str(row["format"]), str(row["path"])
    name = f"{row['what']}-{row['created_at']:%Y%m%dT%H%M%S}.{fmt}"
    if where.startswith(IN_WORKSPACE):
        table = where.removeprefix(IN_WORKSPACE)
        if not engine.has_table(table):
            raise InputError(f"export '{export_id}' is gone from the workspace",
                             code="E_EXPORT")
        data = engine.to_pyarrow(engine.table(table))
        buf = io.BytesIO()
        if fmt == "csv":  # quoted where needed only, as the engines write CSV
            buf.write(data.to_pandas().to_csv(index=False).encode("utf-8"))
        else:
            import pyarrow.parquet as pq

            pq.write_table(data, buf)
        return Rendered(buf.getvalue(), name, MEDIA.get(fmt, "application/octet-stream"),
                        data.num_rows)
    path = Path(where)
    if not path.is_file():
        raise InputError(f"export '{export_id}': its file is gone", code="E_EXPORT")
    return Rendered(path.read_bytes(), path.name, MEDIA.get(fmt, "application/octet-stream"),
                    int(row["rows"]))


def remove_from_file(path: Path, fmt: str, key: str) -> int:
    """Rewrite an export file without the rows of ``customer_key`` ``key`` (in its place,
    atomically, keeping its mode); returns how many rows went."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    removed = 0
    try:
        if fmt == "csv":
            with open(path, newline="", encoding="utf-8") as src, \
                    open(tmp, "w", newline="", encoding="utf-8") as dst:
                reader = csv.reader(src)
                header = next(reader, None)
                if header is None or "customer_key" not in header:
                    raise InputError(f"{path.name} has no customer_key column",
                                     code="E_EXPORT")
                at = header.index("customer_key")
                writer = csv.writer(dst, lineterminator="\n")
                writer.writerow(header)
                for rec in reader:
                    if len(rec) > at and rec[at] == key:
                        removed += 1
                    else:
                        writer.writerow(rec)
        else:
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            source = pq.ParquetFile(path)
            if "customer_key" not in source.schema_arrow.names:
                raise InputError(f"{path.name} has no customer_key column", code="E_EXPORT")
            with pq.ParquetWriter(tmp, source.schema_arrow) as writer:
                for batch in source.iter_batches():
                    keep = pc.invert(pc.fill_null(pc.equal(batch["customer_key"], key),
                                                  False))
                    removed += batch.num_rows - int(pc.sum(keep).as_py() or 0)
                    writer.write_batch(batch.filter(keep))
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return removed
