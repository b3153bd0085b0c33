r"""Compare the stored tables of two tribes workspaces: did two runs give the same results?

    python scripts/compare_workspaces.py BEFORE_WS AFTER_WS [--rtol 1e-9] [--examples 3]

Each workspace's database (``<workspace>/tribes.duckdb``) is attached read-only with plain
``duckdb``: neither tribes nor its configuration is imported, so any two versions of the
code can be compared. An encrypted workspace cannot be read this way, nor one that a
running tribes command holds open for writing. Every table present in either database is
checked for

- presence in both,
- the same columns, in the same order, with the same types,
- the same row count,
- the same rows as multisets (order does not matter, duplicates do). Rows equal on every
  column are set aside first (SQL ``EXCEPT ALL``). The rows left on each side are then
  paired on everything but their floating-point numbers (the DOUBLE columns, and the
  numbers inside JSON text) and those numbers compared with a relative tolerance
  (``--rtol``; ``--atol`` for values near zero). The largest relative difference met is
  printed.

What a second run of the same commands legitimately changes is taken out first, by the
explicit lists at the top of this script (DROPPED, CLOCK_IDS and ID_COLUMNS, PATH_COLUMNS,
JSON_VOLATILE), which the output prints in full:

- columns that say when something ran or was written (``ingested_at``, ``started_at``,
  ``created_at``, ...) and what is computed from those moments (the audit anchor's hash
  and MAC) are dropped;
- ids minted from the wall clock and random hex (``YYYYMMDDTHHMMSS-xxxxxx``: ingest batches,
  stage runs, exports) are not dropped but renamed on each side to their rank in the table
  that mints them (``batch#3``, ``run:prep#2``, ``export:clv#1``), wherever the lists say
  they are referred to, so rows are still checked to belong to the same batch or run;
- file paths lose the directory that holds the workspace (``<root>``, so two demo
  folders compare equal) and the clock stamps in their names (``<stamp>``);
- JSON run reports are parsed, their timings (``seconds``) dropped at any depth, and
  dumped again with sorted keys; every other key is compared.

Both runs must pseudonymize with the same key: tribes keys its pseudonyms (customer ids,
customer keys, hashed personal data) with the workspace's random secret, so set the same
``TRIBES_SECRET`` for both runs, or nothing that names a customer will match.

Output: the exclusions, then one line per table, ``same`` or ``differs: ...`` followed by a
few example rows: ``-`` only in BEFORE, ``+`` only in AFTER, ``~`` a pair whose numbers
differ beyond the tolerance, ``*`` a BEFORE row and the AFTER row most like it, with what
changed (``column.key: before -> after``, into JSON text). The exit status is 0 when every
table is the same, 1 when anything differs, 2 on a usage error.

Checking that a refactoring changed no result (the before/after demo run): two worktrees
share the repository's virtualenv, each side gets a folder with a `tribes` wrapper and the
`python` that demo.sh runs from beside it; on a small machine, one demo after the other.
From the repository's root:

    git worktree add --detach ../wt-before OLD_COMMIT
    git worktree add --detach ../wt-after main
    OUT=$(mktemp -d); PY=$PWD/.venv/bin/python
    for side in before after; do
      mkdir "$OUT/bin-$side"
      printf '#!/bin/sh\nPYTHONPATH=%s/src exec %s -m tribes "$@"\n' \
          "$(realpath ../wt-$side)" "$PY" > "$OUT/bin-$side/tribes"
      printf '#!/bin/sh\nexec %s "$@"\n' "$PY" > "$OUT/bin-$side/python"
      chmod +x "$OUT/bin-$side/tribes" "$OUT/bin-$side/python"
    done
    export TRIBES_SECRET=demo-compare   # one pseudonymization key for both sides
    for side in before after; do
      TRIBES=$OUT/bin-$side/tribes DEMO=$OUT/demo-$side bash ../wt-$side/scripts/demo.sh
    done
    $PY scripts/compare_workspaces.py "$OUT/demo-before/shop" "$OUT/demo-after/shop"

The demo's synthetic data use a fixed seed, so both sides ingest the same input.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import duckdb
from duckdb.func import SPECIAL as SPECIAL_NULLS

DB_FILE = "tribes.duckdb"
SIDES = ("before", "after")

# --- what a second run of the same commands legitimately changes ------------------------

# columns left out, by table: when something ran or was written, and what is made of it
DROPPED: dict[str, tuple[str, ...]] = {
    "events": ("ingested_at",),
    "customers": ("ingested_at",),
    "consents": ("ingested_at",),
    "quarantine": ("quarantined_at", "resolved_at"),
    "batches": ("started_at", "finished_at"),
    # events_loaded_at: the newest ingested_at of the events a stage read
    "stage_runs": ("started_at", "finished_at", "events_loaded_at"),
    "segment_runs": ("created_at",),
    "segment_activations": ("activated_at",),
    "personas": ("created_at",),
    "persona_overrides": ("updated_at",),
    "cohorts": ("created_at", "refreshed_at"),
    "identity_rules": ("created_at", "undone_at"),
    "tombstones": ("erased_at",),
    "exports": ("created_at",),
    "webhook_deadletters": ("failed_at", "replayed_at"),
    "alerts": ("created_at", "acked_at"),
    "activation_state": ("synced_at",),
    "activation_syncs": ("started_at", "finished_at"),
    "activation_removals": ("erased_at",),
    # the hash chains the audit records, which carry their time; the MAC signs the hash
    "audit_anchor": ("anchored_at", "hash", "mac"),
}


@dataclass(frozen=True)
class ClockId:
    """Ids that one table mints from the wall clock: renamed to their rank in it."""

    name: str
    table: str
    column: str
    order: str  # the column that ranks them: when they were minted
    group: str | None = None  # ranks are counted per value of this column


CLOCK_IDS: tuple[ClockId, ...] = (
    ClockId("batch", "batches", "batch_id", "started_at"),
    ClockId("run", "stage_runs", "run_id", "started_at", group="stage"),
    ClockId("export", "exports", "export_id", "created_at", group="what"),
)
# a clock id, with the prefix some carry: prep-20261207T151053-96d9c3, x20261207T151115-f8240f
CLOCK_ID_RE = re.compile(r"(?<![\w-])(?:[a-z_]+-|x)?\d{8}T\d{6}-[0-9a-f]{6}(?![\w-])")
# where they are referred to: the whole value is one, or text holds some (JSON)
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("batch_id",),
    "customers": ("batch_id",),
    "consents": ("batch_id",),
    "quarantine": ("batch_id", "resolved_by"),
    "batches": ("batch_id",),
    "stage_runs": ("run_id", "params", "report"),
    "segment_runs": ("snapshot",),
    "clv": ("fit_id",),
    "exports": ("export_id",),
    "export_members": ("export_id",),
}
# file paths: the workspace's parent folder becomes <root>, clock stamps <stamp>
PATH_COLUMNS: dict[str, tuple[str, ...]] = {
    "quarantine": ("file",),
    "batches": ("files",),
    "exports": ("path",),
    "activation_syncs": ("location",),
}
STAMP_RE = re.compile(r"(?<!\d)\d{8}T\d{6}(?!\d)")
# JSON columns compared without these keys (at any depth), re-dumped with sorted keys
JSON_VOLATILE: dict[tuple[str, str], tuple[str, ...]] = {
    ("stage_runs", "report"): ("seconds",),
}

# --- canonical values ---------------------------------------------------------------------

def qi(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def ql(value: str) -> str:
    """A quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Side:
    """One workspace: its attached database's name, its root folder, its clock-id names."""

    name: str
    workspace: Path
    tables: set[str] = field(default_factory=set)
    ids: dict[str, str] = field(default_factory=dict)

    def rename_ids(self, text: str | None) -> str | None:
        if text is None:
            return None
        if text in self.ids:
            return self.ids[text]
        return CLOCK_ID_RE.sub(lambda m: self.ids.get(m.group(0), "<unknown clock id>"), text)

    def path(self, text: str | None) -> str | None:
        if text is None:
            return None
        where = self.workspace.resolve()
        root = str(where.parent)
        if root != where.anchor:
            text = text.replace(root, "<root>")
        return STAMP_RE.sub("<stamp>", self.rename_ids(text) or "")

    def json(self, text: str | None, keys: frozenset[str]) -> str | None:
        if text is None:
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            return self.rename_ids(text)
        return json.dumps(self._strip(parsed, keys), sort_keys=True)

    def _strip(self, value: Any, keys: frozenset[str]) -> Any:
        if isinstance(value, dict):
            return {k: self._strip(v, keys) for k, v in value.items() if k not in keys}
        if isinstance(value, list):
            return [self._strip(v, keys) for v in value]
        if isinstance(value, str):
            return self.rename_ids(value)
        return value


def columns(con: duckdb.DuckDBPyConnection, side: str, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = 'main' AND table_name = ? "
        "ORDER BY column_index", [side, table]).fetchall()
    return {str(c): str(t) for c, t in rows}


def list_tables(con: duckdb.DuckDBPyConnection, side: str) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
        "AND schema_name = 'main' UNION SELECT view_name FROM duckdb_views() "
        "WHERE database_name = ? AND schema_name = 'main' AND NOT internal",
        [side, side]).fetchall()
    return {str(r[0]) for r in rows}


def clock_id_names(con: duckdb.DuckDBPyConnection, side: Side) -> dict[str, str]:
    """Every clock-minted id of one side and the name it is compared under."""
    names: dict[str, str] = {}
    for cid in CLOCK_IDS:
        if cid.table not in side.tables:
            continue
        cols = columns(con, side.name, cid.table)
        if cid.column not in cols or cid.order not in cols:
            continue
        group = qi(cid.group) if cid.group and cid.group in cols else "NULL"
        rows = con.execute(
            f"SELECT {qi(cid.column)}, {group}, row_number() OVER (PARTITION BY {group} "
            f"ORDER BY {qi(cid.order)}, {qi(cid.column)}) "
            f"FROM {side.name}.main.{qi(cid.table)} "
            f"WHERE {qi(cid.column)} IS NOT NULL").fetchall()
        for value, grp, rank in rows:
            prefix = cid.name if grp is None else f"{cid.name}:{grp}"
            names[str(value)] = f"{prefix}#{rank}"
    return names


def register_udfs(con: duckdb.DuckDBPyConnection, side: Side) -> None:
    """SQL functions giving one side's canonical values: ids_<side>(text),
    path_<side>(text) and json_<side>_<table>_<column>(text)."""

    def json_of(keys: frozenset[str]) -> Callable[[str | None], str | None]:
        return lambda text: side.json(text, keys)

    con.create_function(f"ids_{side.name}", side.rename_ids, ["VARCHAR"], "VARCHAR",
                        null_handling=SPECIAL_NULLS)
    con.create_function(f"path_{side.name}", side.path, ["VARCHAR"], "VARCHAR",
                        null_handling=SPECIAL_NULLS)
    for (table, column), keys in JSON_VOLATILE.items():
        con.create_function(f"json_{side.name}_{table}_{column}", json_of(frozenset(keys)),
                            ["VARCHAR"], "VARCHAR", null_handling=SPECIAL_NULLS)


def projection(side: str, table: str, cols: Sequence[str], types: dict[str, str]) -> str:
    """The SELECT list of a table's canonical rows on one side."""
    out = []
    for c in cols:
        expr = qi(c)
        if types[c] == "VARCHAR":
            if (table, c) in JSON_VOLATILE:
                expr = f"json_{side}_{table}_{c}({expr})"
            elif c in PATH_COLUMNS.get(table, ()):
                expr = f"path_{side}({expr})"
            elif c in ID_COLUMNS.get(table, ()):
                expr = f"ids_{side}({expr})"
        out.append(f"{expr} AS {qi(c)}")
    return ", ".join(out)


# --- pairing rows that differ only in floating-point numbers -----------------------------

Shape = Any  # a row with its floats taken out: nested tuples, hashable
Floats = list[tuple[str, float]]  # (where, value)


def split_floats(value: Any, where: str, floats: Floats) -> Shape:
    """``value`` with each float replaced by a marker, the floats appended to ``floats``;
    text holding a JSON object or array is parsed, so its numbers count too."""
    if isinstance(value, float):
        floats.append((where, value))
        return "<float>"
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return ("<json>", split_floats(parsed, where + "$", floats))
    if isinstance(value, dict):
        return tuple((k, split_floats(v, f"{where}.{k}", floats))
                     for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    if isinstance(value, list | tuple):
        return ("<list>", *(split_floats(v, f"{where}[{i}]", floats)
                            for i, v in enumerate(value)))
    return value


def rel_diff(a: float, b: float) -> float:
    """|a-b| / max(|a|,|b|): 0 when equal (NaN equals NaN), inf when only one is NaN or
    infinite."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def near_zero(a: float, b: float, rtol: float, atol: float) -> bool:
    """Equal only by the absolute tolerance: both near zero, relatively far apart."""
    return rel_diff(a, b) > rtol and abs(a - b) <= atol


def float_key(f: Floats) -> list[tuple[bool, float]]:
    return [(math.isnan(v), 0.0 if math.isnan(v) else v) for _, v in f]


@dataclass
class Pairing:
    close: int = 0  # pairs within the tolerance
    far: list[tuple[Any, list[str]]] = field(default_factory=list)  # (row, differences)
    unpaired: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    max_rel: float = 0.0  # of the numbers compared relatively
    max_abs_near: float = 0.0  # of the numbers near zero that atol alone lets pass


def pair_rows(rows: dict[str, list[tuple[Any, ...]]], cols: Sequence[str], rtol: float,
              atol: float) -> Pairing:
    """Pair the rows left on each side that differ only in their floats."""
    out = Pairing(unpaired={s: [] for s in SIDES})
    groups: dict[Shape, dict[str, list[tuple[Floats, tuple[Any, ...]]]]] = defaultdict(
        lambda: {s: [] for s in SIDES})
    for s in SIDES:
        for row in rows[s]:
            floats: Floats = []
            shape = tuple(split_floats(v, c, floats) for c, v in zip(cols, row, strict=True))
            groups[shape][s].append((floats, row))
    for sides in groups.values():
        before, after = (sorted(sides[s], key=lambda fr: float_key(fr[0])) for s in SIDES)
        for (fb, rb), (fa, _) in zip(before, after, strict=False):
            moved = []
            for (w, b), (_, a) in zip(fb, fa, strict=True):
                if near_zero(b, a, rtol, atol):
                    out.max_abs_near = max(out.max_abs_near, abs(b - a))
                    continue
                rel = rel_diff(b, a)
                if not math.isinf(rel):
                    out.max_rel = max(out.max_rel, rel)
                if rel > rtol:
                    moved.append(f"{w}: {b!r} -> {a!r}")
            if moved:
                out.far.append((rb, moved))
            else:
                out.close += 1
        n = min(len(before), len(after))
        out.unpaired["before"].extend(r for _, r in before[n:])
        out.unpaired["after"].extend(r for _, r in after[n:])
    return out


# --- comparing ----------------------------------------------------------------------------

@dataclass
class TableResult:
    table: str
    same: bool = True
    notes: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    rows: tuple[int, int] = (0, 0)
    max_rel: float = 0.0
    max_abs_near: float = 0.0
    excluded: list[str] = field(default_factory=list)

    def differ(self, note: str) -> None:
        self.same = False
        self.notes.append(note)


def show(row: Sequence[Any], cols: Sequence[str], width: int = 48) -> str:
    parts = []
    for c, v in zip(cols, row, strict=True):
        text = v if isinstance(v, str) else repr(v)
        if len(text) > width:
            text = text[: width - 3] + "..."
        parts.append(f"{c}={text}")
    return ", ".join(parts)


def count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    return int(row[0]) if row else 0


def compare_table(con: duckdb.DuckDBPyConnection, table: str, rtol: float, atol: float,
                  n_examples: int, pair_limit: int) -> TableResult:
    res = TableResult(table)
    types = {s: columns(con, s, table) for s in SIDES}
    before, after = types["before"], types["after"]
    res.rows = (count(con, f"FROM before.main.{qi(table)}"),
                count(con, f"FROM after.main.{qi(table)}"))
    if list(before.items()) != list(after.items()):
        only_b = [c for c in before if c not in after]
        only_a = [c for c in after if c not in before]
        retyped = [f"{c} {before[c]} -> {after[c]}" for c in before
                   if c in after and before[c] != after[c]]
        if only_b:
            res.differ(f"columns only in BEFORE: {', '.join(only_b)}")
        if only_a:
            res.differ(f"columns only in AFTER: {', '.join(only_a)}")
        if retyped:
            res.differ(f"types: {'; '.join(retyped)}")
        if not (only_b or only_a or retyped):
            res.differ("the same columns in another order")
    if res.rows[0] != res.rows[1]:
        res.differ(f"{res.rows[0]:,} rows in BEFORE, {res.rows[1]:,} in AFTER")
    dropped = set(DROPPED.get(table, ()))
    res.excluded = [c for c in before if c in dropped]
    # rows are compared on the columns both sides have with the same type
    cols = [c for c in before if after.get(c) == before[c] and c not in dropped]
    if not cols:
        return res
    sel = {s: f"SELECT {projection(s, table, cols, before)} FROM {s}.main.{qi(table)}"
           for s in SIDES}
    con.execute(f"CREATE OR REPLACE TEMP TABLE left_before AS "
                f"{sel['before']} EXCEPT ALL {sel['after']}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE left_after AS "
                f"{sel['after']} EXCEPT ALL {sel['before']}")
    left = {s: count(con, f"FROM left_{s}") for s in SIDES}
    if not any(left.values()):
        return res
    order = ", ".join(qi(c) for c in cols)
    if max(left.values()) > pair_limit:
        # too many to pair in memory: the exact difference, with examples
        res.differ(f"{left['before']:,} rows only in BEFORE, {left['after']:,} only in "
                   f"AFTER (exact comparison: over --pair-limit {pair_limit:,})")
        for s, mark in (("before", "-"), ("after", "+")):
            for row in con.execute(f"FROM left_{s} ORDER BY {order} "
                                   f"LIMIT {n_examples}").fetchall():
                res.examples.append(f"{mark} {show(row, cols)}")
        return res
    rows = {s: con.execute(f"FROM left_{s} ORDER BY {order}").fetchall() for s in SIDES}
    p = pair_rows(rows, cols, rtol, atol)
    res.max_rel, res.max_abs_near = p.max_rel, p.max_abs_near
    if p.close:
        res.notes.append(f"{p.close:,} rows equal within the tolerance")
    if p.far:
        res.differ(f"{len(p.far):,} rows whose numbers differ beyond rtol {rtol:g}")
        for row, moved in p.far[:n_examples]:
            fixed = [(c, v) for c, v in zip(cols, row, strict=True)
                     if not isinstance(v, float)]
            res.examples.append(f"~ {show([v for _, v in fixed], [c for c, _ in fixed], 24)}"
                                f" | {'; '.join(moved[:4])}"
                                + (f"; ... {len(moved) - 4} more" if len(moved) > 4 else ""))
    n_b, n_a = (len(p.unpaired[s]) for s in SIDES)
    if n_b or n_a:
        res.differ(f"{n_b:,} rows only in BEFORE, {n_a:,} only in AFTER")
        res.examples.extend(unpaired_examples(p.unpaired, cols, rtol, atol, n_examples))
    return res


def short(value: Any, width: int = 60) -> str:
    text = json.dumps(value) if isinstance(value, dict | list) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def as_json(value: Any) -> Any:
    """Text holding a JSON object or array, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def deep_diff(a: Any, b: Any, where: str, out: list[str], rtol: float, atol: float) -> None:
    """Where ``a`` and ``b`` differ (JSON text compared as parsed), as readable lines."""
    a, b = as_json(a), as_json(b)
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in b:
                out.append(f"{where}.{k}: {short(a[k])} -> (absent)")
            elif k not in a:
                out.append(f"{where}.{k}: (absent) -> {short(b[k])}")
            else:
                deep_diff(a[k], b[k], f"{where}.{k}", out, rtol, atol)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            deep_diff(x, y, f"{where}[{i}]", out, rtol, atol)
    elif isinstance(a, float) and isinstance(b, float):
        if rel_diff(a, b) > rtol and not near_zero(a, b, rtol, atol):
            out.append(f"{where}: {a!r} -> {b!r}")
    elif a != b or type(a) is not type(b):
        out.append(f"{where}: {short(a)} -> {short(b)}")


def unpaired_examples(rows: dict[str, list[tuple[Any, ...]]], cols: Sequence[str],
                      rtol: float, atol: float, n_examples: int) -> list[str]:
    """Example rows found on one side only. A BEFORE row shown beside the AFTER row that
    agrees with it on the most columns (at least half) reads as what changed (``*``)."""
    out: list[str] = []
    after = list(rows["after"])
    shown_after = 0
    for rb in rows["before"][:n_examples]:
        best, agree = None, 0
        for i, ra in enumerate(after):
            n = sum(x == y for x, y in zip(rb, ra, strict=True))
            if n > agree:
                best, agree = i, n
        if best is not None and agree * 2 >= len(cols):
            ra = after.pop(best)
            same = [(c, x) for c, x, y in zip(cols, rb, ra, strict=True) if x == y]
            changes: list[str] = []
            for c, x, y in zip(cols, rb, ra, strict=True):
                if x != y:
                    deep_diff(x, y, c, changes, rtol, atol)
            out.append(f"* {show([x for _, x in same[:3]], [c for c, _ in same[:3]], 24)}"
                       f" | {'; '.join(changes[:6])}"
                       + (f"; ... {len(changes) - 6} more" if len(changes) > 6 else ""))
            shown_after += 1
        else:
            out.append(f"- {show(rb, cols)}")
    for ra in after[: max(0, n_examples - shown_after)]:
        out.append(f"+ {show(ra, cols)}")
    return out


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def open_both(sides: Sequence[Side]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    for side in sides:
        db = side.workspace / DB_FILE
        if not db.is_file():
            fail(f"no {DB_FILE} in {side.workspace} (is it a tribes workspace?)")
        try:
            con.execute(f"ATTACH {ql(str(db))} AS {side.name} (READ_ONLY)")
        except duckdb.Error as exc:
            fail(f"cannot open {db} read-only ({exc}); an encrypted workspace, or one "
                 "that a running command holds, cannot be read")
        side.tables = list_tables(con, side.name)
        side.ids = clock_id_names(con, side)
        register_udfs(con, side)
    return con


def print_exclusions() -> None:
    print("Excluded or rewritten before comparing (what differs between two runs):")
    for table, cols in DROPPED.items():
        print(f"  dropped   {table}: {', '.join(cols)}")
    for cid in CLOCK_IDS:
        per = f" per {cid.group}" if cid.group else ""
        print(f"  renamed   {cid.table}.{cid.column}: clock ids -> {cid.name}#rank "
              f"(by {cid.order}{per})")
    refs = [f"{t}.{c}" for t, cs in ID_COLUMNS.items() for c in cs]
    print(f"  renamed   clock ids in {', '.join(refs)}")
    paths = [f"{t}.{c}" for t, cs in PATH_COLUMNS.items() for c in cs]
    print(f"  paths     {', '.join(paths)}: the workspace's parent folder -> <root>, "
          "clock stamps -> <stamp>")
    for (table, column), keys in JSON_VOLATILE.items():
        print(f"  JSON      {table}.{column}: without keys {', '.join(keys)}")


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog=doc.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path, help="the first workspace folder (BEFORE)")
    ap.add_argument("after", type=Path, help="the second workspace folder (AFTER)")
    ap.add_argument("--rtol", type=float, default=1e-9,
                    help="relative tolerance of floating-point numbers (default 1e-9)")
    ap.add_argument("--atol", type=float, default=1e-12,
                    help="absolute tolerance, for numbers near zero (default 1e-12)")
    ap.add_argument("--examples", type=int, default=3, metavar="N",
                    help="example rows shown per kind of difference (default 3)")
    ap.add_argument("--table", action="append", metavar="NAME",
                    help="compare only this table (repeatable)")
    ap.add_argument("--pair-limit", type=int, default=200_000, metavar="N",
                    help="rows left on a side above which a table is compared exactly, "
                         "without pairing floats (default 200,000)")
    args = ap.parse_args(argv)

    sides = [Side("before", args.before), Side("after", args.after)]
    con = open_both(sides)
    print(f"BEFORE {args.before}\nAFTER  {args.after}")
    print_exclusions()
    names = sorted(sides[0].tables | sides[1].tables)
    if args.table:
        unknown = set(args.table) - set(names)
        if unknown:
            ap.error(f"no table {', '.join(sorted(unknown))} in either workspace")
        names = [n for n in names if n in set(args.table)]
    width = max((len(n) for n in names), default=10)
    differ = 0
    for name in names:
        missing = [s.name.upper() for s in sides if name not in s.tables]
        if missing:
            print(f"{name:<{width}}  differs: missing from {missing[0]}")
            differ += 1
            continue
        r = compare_table(con, name, args.rtol, args.atol, args.examples, args.pair_limit)
        extra = [f"{r.rows[0]:,} rows" if r.rows[0] == r.rows[1]
                 else f"{r.rows[0]:,}/{r.rows[1]:,} rows"]
        if r.max_rel:
            extra.append(f"max rel diff {r.max_rel:.3g}")
        if r.max_abs_near:
            extra.append(f"near zero: max abs diff {r.max_abs_near:.3g}")
        if r.excluded:
            extra.append(f"without {', '.join(r.excluded)}")
        if r.same:
            notes = f"; {'; '.join(r.notes)}" if r.notes else ""
            print(f"{name:<{width}}  same ({'; '.join(extra)}){notes}")
        else:
            differ += 1
            print(f"{name:<{width}}  differs: {'; '.join(r.notes)} ({'; '.join(extra)})")
            for ex in r.examples:
                print(f"{'':<{width}}    {ex}")
    print(f"{len(names) - differ} of {len(names)} tables the same"
          + (f", {differ} differ" if differ else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
