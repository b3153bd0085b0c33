"""Per-batch lookup tables: pseudonyms of the batch's ids, standard spellings of its
categorical values.

Both are built from distinct values (few compared with rows) and applied with joins,
so HMAC and the standardization rules run once per distinct value. Checks that depend
on a standardized value (is this a purchase?) are answered on the raw value by asking
which raw values map to what, so they need no join.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.ingest.mapping import ColumnMapping
from tribes.ingest.spec import KindSpec
from tribes.prep.standardize import canonical_event_type, mapping_for
from tribes.privacy.pseudonymize import pseudonymize


@dataclass
class Lookups:
    """raw -> pseudonym tables (in the engine) and raw -> canonical maps (in Python)."""

    ids: dict[str, ir.Table] = field(default_factory=dict)
    categories: dict[str, dict[str, str | None]] = field(default_factory=dict)
    constants: dict[str, str | None] = field(default_factory=dict)

    def raw_values_for(self, column: str, wanted: set[str | None]) -> list[str]:
        """Raw values of ``column`` whose standard spelling is in ``wanted``."""
        return [raw for raw, canon in self.categories.get(column, {}).items() if canon in wanted]

    def standard_is(self, t: ir.Table, column: str, wanted: set[str | None]) -> ir.BooleanValue:
        """Whether the standardized ``column`` of each row is in ``wanted`` (None = null)."""
        if column in self.constants:
            return ibis.literal(self.constants[column] in wanted)
        if column not in t.columns:
            return ibis.literal(None in wanted)
        raws = self.raw_values_for(column, wanted)
        hit = t[column].isin(raws) if raws else ibis.literal(False)
        return (hit | t[column].isnull()) if None in wanted else hit.fill_null(False)

    def apply(self, t: ir.Table) -> ir.Table:
        """Replace raw ids by pseudonyms and raw categoricals by their standard spelling."""
        for col, lookup in self.ids.items():
            rk, pk = f"_raw_{col}", f"_pid_{col}"
            joined = t.left_join(lookup, t[col] == lookup[rk])
            t = joined.mutate(**{col: joined[pk]}).drop(rk, pk)
        for col, table in self.categories.items():
            if all(k == v for k, v in table.items()):
                continue
            rk, sk = f"_raw_{col}", f"_std_{col}"
            lookup = ibis.memtable({rk: list(table), sk: list(table.values())},
                                   schema={rk: "string", sk: "string"})
            joined = t.left_join(lookup, t[col] == lookup[rk])
            t = joined.mutate(**{col: joined[sk]}).drop(rk, sk)
        if self.constants:
            t = t.mutate(**{c: ibis.literal(v, type="string") for c, v in self.constants.items()})
        return t


def build_lookups(engine: Engine, stage: ir.Table, spec: KindSpec, mapping: ColumnMapping,
                  key: bytes, *, user_maps: dict[str, dict[str, str]],
                  aliases: dict[str, str], event_type: str | None) -> Lookups:
    """Collect the batch's distinct ids and categorical values and map them."""
    out = Lookups()
    for f in spec.fields:
        if f.name not in mapping.targets:
            continue
        if f.kind == "id":
            rk, pk = f"_raw_{f.name}", f"_pid_{f.name}"
            ids = stage.select(**{rk: stage[f.name]})
            ids = ids.filter(ids[rk].notnull()).distinct()
            out.ids[f.name] = engine.create_temp(
                f"_tribes_ids_{f.name}", ids.mutate(**{pk: pseudonymize(ids[rk], key)}))
        elif f.kind in ("snake", "place"):
            values = engine.execute(stage.select(f.name).distinct())[f.name].tolist()
            out.categories[f.name] = mapping_for(
                f.name, [v for v in values if isinstance(v, str)],
                user_map=user_maps.get(f.name), event_aliases=aliases)
    if spec.kind == "events" and event_type:
        out.constants["event_type"] = canonical_event_type(event_type, aliases)
    return out
