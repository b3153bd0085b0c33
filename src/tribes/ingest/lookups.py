"""Per-batch lookup tables: pseudonyms of the batch's ids, standard spellings of its
categorical values.

Both are built from distinct values (few compared with rows) and applied with joins,
so HMAC and the standardization rules run once per distinct value. Checks that depend
on a standardized value (is this a purchase?) are answered on the raw value by asking
which raw values map to what, so they need no join.

A region or a city is standardized within its row's country (``NH`` is New Hampshire in
the US, Noord-Holland in the Netherlands): when the batch has a country column, the
profile collects their distinct (raw country, raw value) pairs, and ``apply`` replaces
them through a map keyed on both (one text per pair, :func:`pair_key`), or on the raw
value alone when no value of the batch reads differently in two countries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.ingest.mapping import ColumnMapping
from tribes.ingest.spec import KindSpec
from tribes.ingest.stage import NULL_MARK, PSEUDONYM_MARK, SEP
from tribes.ingest.standardize import (
    PAIRED,
    PLACES,
    canonical_event_type,
    mapping_for,
    place_spellings,
)
from tribes.privacy import pseudonymize

SMALL_MAP = 32
Pair = tuple[str | None, str]  # (raw country or None, raw region or city)


def pair_key(country: ir.StringValue, value: ir.StringValue) -> ir.StringValue:
    """One text per (raw country, raw value) pair, null when the value is; see pair_text."""
    return country.fill_null(NULL_MARK) + SEP + value


def pair_text(pair: Pair) -> str:
    """The text :func:`pair_key` makes of ``pair``."""
    return (NULL_MARK if pair[0] is None else pair[0]) + SEP + pair[1]


@dataclass
class Lookups:
    """raw -> pseudonym table (in the engine) and raw -> canonical maps (in Python)."""

    ids: ir.Table | None = None  # columns _raw, _pid; one table serves every id column
    id_columns: list[str] = field(default_factory=list)
    categories: dict[str, dict[str, str | None]] = field(default_factory=dict)
    # region and city next to a country column: (raw country, raw value) -> standard
    paired: dict[str, dict[Pair, str | None]] = field(default_factory=dict)
    constants: dict[str, str | None] = field(default_factory=dict)
    erased: ir.Table | None = None  # raw ids (_raw) of erased people seen in this batch
    # per place column, the spellings the reference data does not know
    unmatched: dict[str, list[str]] = field(default_factory=dict)

    def is_erased(self, t: ir.Table) -> ir.BooleanValue | None:
        """Whether a row carries an id of an erased person; None when the batch has none."""
        if self.erased is None:
            return None
        raws = self.erased._raw
        return ibis.or_(*(t[c].isin(raws).fill_null(False) for c in self.id_columns))

    def raw_values_for(self, column: str, wanted: set[str | None]) -> list[str]:
        """Raw values of ``column`` whose standard spelling is in ``wanted``."""
        return [raw for raw, canon in self.categories.get(column, {}).items() if canon in wanted]

    def standard_is(self, t: ir.Table, column: str, wanted: set[str | None]) -> ir.BooleanValue:
        """Whether the standardized ``column`` of each row is in ``wanted`` (None = null)."""
        if column in self.constants:
            return ibis.literal(self.constants[column] in wanted)
        if column not in t.columns:
            return ibis.literal(None in wanted)
        if column in self.paired:
            keys = [pair_text(p) for p, v in self.paired[column].items() if v in wanted]
            key = pair_key(t.country, t[column])
            hit = key.isin(keys) if keys else ibis.literal(False)
        else:
            raws = self.raw_values_for(column, wanted)
            hit = t[column].isin(raws) if raws else ibis.literal(False)
        return (hit | t[column].isnull()) if None in wanted else hit.fill_null(False)

    def is_standardized(self, column: str) -> bool:
        """Whether the lookups standardize ``column`` (its values were profiled)."""
        return column in self.categories or column in self.paired

    def apply(self, t: ir.Table) -> ir.Table:
        """Replace raw ids by pseudonyms and raw categoricals by their standard spelling."""
        if self.ids is not None:
            for col in self.id_columns:
                lookup = self.ids.rename({f"_raw_{col}": "_raw", f"_pid_{col}": "_pid"})
                rk, pk = f"_raw_{col}", f"_pid_{col}"
                joined = t.left_join(lookup, t[col] == lookup[rk])
                t = joined.mutate(**{col: joined[pk]}).drop(rk, pk)
        # region and city first: their lookups are keyed on the raw country
        for col, pairs in self.paired.items():
            if all(raw == v for (_, raw), v in pairs.items()):
                continue
            by_value: dict[str, set[str | None]] = {}
            for (_, raw), v in pairs.items():
                by_value.setdefault(raw, set()).add(v)
            if all(len(v) == 1 for v in by_value.values()):
                # no value of the batch reads differently in two countries
                t = _replace(t, col, {raw: v.pop() for raw, v in by_value.items()})
            else:
                t = _replace(t, col, {pair_text(p): v for p, v in pairs.items()},
                             pair_key(t.country, t[col]))
        for col, table in self.categories.items():
            if not all(k == v for k, v in table.items()):
                t = _replace(t, col, table)
        if self.constants:
            t = t.mutate(**{c: ibis.literal(v, type="string") for c, v in self.constants.items()})
        return t


def _replace(t: ir.Table, col: str, table: dict[str, str | None],
             key: ir.StringValue | None = None) -> ir.Table:
    """``col`` replaced by its standard spelling, ``table[key]`` (``key``: the column's
    raw value unless given; ``table`` holds every key of the batch, so a key missing from
    it is null)."""
    if len(table) <= SMALL_MAP:
        # a literal map is cheaper per row than a join, and than a CASE that tries the
        # values one after the other
        return t.mutate(**{col: ibis.map(table).get(t[col] if key is None else key)})
    rk, sk, kk = f"_raw_{col}", f"_std_{col}", f"_key_{col}"
    lookup = ibis.memtable({rk: list(table), sk: list(table.values())},
                           schema={rk: "string", sk: "string"})
    if key is not None:
        t = t.mutate(**{kk: key})
    joined = t.left_join(lookup, t[col if key is None else kk] == lookup[rk])
    return joined.mutate(**{col: joined[sk]}).drop(rk, sk, *([kk] if key is not None else []))


@dataclass(frozen=True)
class BatchProfile:
    """What one aggregation over the batch tells: row count, distinct repeat keys, the
    distinct values of every categorical column and the distinct (country, value) pairs
    of the region and city next to a country (few, so they come to Python)."""

    rows: int
    distinct_records: int
    values: dict[str, list[str]]
    pairs: dict[str, list[Pair]] = field(default_factory=dict)


def profile_batch(engine: Engine, stage: ir.Table, spec: KindSpec,
                  mapping: ColumnMapping, repeat_key: str) -> BatchProfile:
    """Scan the batch once for its row count, repeats and distinct categorical values."""
    cols = [f.name for f in spec.fields
            if f.kind in ("snake", "place") and f.name in mapping.targets]
    paired = [c for c in cols if c in PAIRED] if "country" in cols else []
    aggs: dict[str, ir.Scalar] = {"_n": stage.count(), "_d": stage[repeat_key].nunique()}
    for c in cols:
        if c in paired:
            # a struct: distinct pairs cost half as much as distinct texts made of them
            pair = ibis.struct({"c": stage.country, "v": stage[c]})
            aggs[f"p_{c}"] = pair.collect(distinct=True, where=stage[c].notnull())
        else:
            aggs[f"v_{c}"] = stage[c].collect(distinct=True)
    row = engine.to_pyarrow(stage.aggregate(**aggs)).to_pylist()[0]
    values = {c: [v for v in (row[f"v_{c}"] or []) if v is not None]
              for c in cols if c not in paired}
    pairs = {c: [(p["c"], p["v"]) for p in (row[f"p_{c}"] or []) if p and p["v"] is not None]
             for c in paired}
    return BatchProfile(int(row["_n"]), int(row["_d"]), values, pairs)


def build_lookups(engine: Engine, stage: ir.Table, profile: BatchProfile, spec: KindSpec,
                  mapping: ColumnMapping, key: bytes, *, user_maps: dict[str, dict[str, str]],
                  aliases: dict[str, str], event_type: str | None,
                  pii: list[ir.StringValue] | None = None, marked: bool = False) -> Lookups:
    """Map the batch's distinct values: ids to pseudonyms, categoricals to their standard
    spelling (in Python, from the profile).

    Ids can be many, so they stay in the engine: their distinct values (over every id
    column, which share the key, and the personal-data columns to hash, ``pii``: text
    expressions over ``stage``) and HMAC go to one temporary table. ``marked``: values
    may carry :data:`~tribes.ingest.stage.PSEUDONYM_MARK` (pseudonyms already).
    """
    out = Lookups()
    id_cols = [f.name for f in spec.fields if f.kind == "id" and f.name in mapping.targets]
    values = [stage[c] for c in id_cols] + list(pii or [])
    if values:
        raws = ibis.union(*[stage.select(_raw=v) for v in values])
        raws = raws.filter(raws._raw.notnull()).distinct()
        pid = pseudonymize(raws._raw, key)
        if marked:
            # a record read again from the quarantine: its pseudonyms stay as they are
            pid = ibis.ifelse(raws._raw.startswith(PSEUDONYM_MARK),
                              raws._raw.substr(len(PSEUDONYM_MARK)), pid)
        out.ids = engine.create_temp("_tribes_ids", raws.mutate(_pid=pid))
        out.id_columns = id_cols
        if int(engine.scalar(engine.table("tombstones").count())):

            out.erased = erased_raw_ids(engine, out.ids)  # a table: no id goes into SQL text
    for c, vals in profile.values.items():
        if c not in PLACES:
            out.categories[c] = mapping_for(c, vals, user_map=user_maps.get(c),
                                            event_aliases=aliases)
    places = place_spellings({c: v for c, v in profile.values.items() if c in PLACES},
                             profile.pairs, user_maps)
    out.categories.update(places.single)
    out.paired, out.unmatched = places.paired, places.unmatched
    if spec.kind == "events" and event_type:
        out.constants["event_type"] = canonical_event_type(event_type, aliases)
    return out


def erased_raw_ids(engine: Engine, lookup: ir.Table) -> ir.Table | None:
    """The raw ids of a batch (``lookup``: columns ``_raw``, ``_pid``) that are tombstoned,
    as a temporary table (None when there are none)."""
    stones = engine.table("tombstones")
    hit = engine.create_temp("_tribes_erased",
                             lookup.semi_join(stones, lookup._pid == stones.id).select("_raw"))
    return hit if int(engine.scalar(hit.count())) else None
