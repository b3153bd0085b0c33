"""Matching source columns to target columns: explicit ``--map`` first, then spellings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tribes.config import PiiAction
from tribes.errors import InputError, closest, missing_column
from tribes.ingest.spec import KindSpec

# a unit written after a column name: "Revenue (USD)", "Amount [EUR]", "Price (€)"
_UNIT = re.compile(r"\s*[(\[][^()\[\]]*[)\]]\s*$")


def squash(name: str) -> str:
    """Compare column names loosely: ``userId``, ``user_id`` and ``User ID`` are equal."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column feeds which target column, and what happens to the rest."""

    targets: dict[str, str]  # target -> source column
    auto: frozenset[str]  # targets found by spelling rather than --map
    pii: dict[str, PiiAction]  # source column -> drop | hash
    extra: tuple[str, ...]  # source columns kept in `properties`

    def describe(self) -> dict[str, str]:
        return dict(self.targets)


def parse_pairs(items: list[str] | None, option: str, example: str,
                code: str = "E_OPTION", form: str = "NAME=VALUE") -> dict[str, str]:
    """Parse ``NAME=VALUE`` pairs given comma-separated or repeated (``--map ts=sold_at,
    customer_id=member_no``) into a dict; ``example`` is shown when one is not a pair."""
    result: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise InputError(f"{option} '{part}' is not {form} (e.g. {option} "
                                 f"{example})", code=code)
            result[name.strip()] = value.strip()
    return result


def parse_map_option(items: list[str] | None) -> dict[str, str]:
    """Parse ``--map ts=sold_at,customer_id=member_no`` (repeatable) into a dict."""
    return parse_pairs(items, "--map", "ts=sold_at", code="E_MAP", form="target=source")


def resolve_mapping(
    columns: list[str],
    spec: KindSpec,
    explicit: dict[str, str],
    pii_config: dict[str, PiiAction],
    *,
    constant_targets: set[str] | None = None,
    strict: bool = True,
) -> ColumnMapping:
    """Decide the source column of every target column of ``spec``.

    Parameters
    ----------
    columns
        Source column names in file order.
    explicit
        ``--map`` pairs, target -> source; these win over spellings.
    pii_config
        Source column names (compared loosely) that hold personal data -> action.
    constant_targets
        Targets given as a constant on the command line (e.g. ``--event-type``).
    strict
        Raise when a required target or every identifier is missing (a file); without it
        the rows are checked one by one instead (a streamed message).

    Raises
    ------
    InputError
        An explicit source column does not exist or a target is unknown.
    MissingColumnError
        A required target has no source column.
    """
    constant_targets = constant_targets or set()
    names = set(spec.names)
    targets: dict[str, str] = {}
    for target, source in explicit.items():
        if target not in names:
            guess = closest(target, names)
            hint = f"; did you mean '{guess}'?" if guess else f"; targets: {', '.join(spec.names)}"
            raise InputError(f"--map target '{target}' is not a {spec.kind} column{hint}",
                             code="E_MAP")
        if source not in columns:
            guess = closest(source, columns)
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise InputError(f"--map source column '{source}' is not in the input{hint}",
                             code="E_MAP")
        targets[target] = source
    used = set(targets.values())
    by_squash: dict[str, str] = {}
    by_bare: dict[str, str] = {}  # names without a unit: "Revenue (USD)" -> revenue
    for c in columns:
        by_squash.setdefault(squash(c), c)
        bare = _UNIT.sub("", c)
        if bare and bare != c:
            by_bare.setdefault(squash(bare), c)
    auto: set[str] = set()
    for f in spec.fields:
        if f.name in targets or f.name in constant_targets:
            continue
        spellings = [squash(s) for s in (f.name, *f.aliases)]
        # a name as written wins over one that matches only without its unit
        hits = [names_.get(s) for names_ in (by_squash, by_bare) for s in spellings]
        found = next((h for h in hits if h is not None and h not in used), None)
        if found is not None:
            targets[f.name] = found
            used.add(found)
            auto.add(f.name)
    for f in spec.fields:
        if not strict:
            break
        if f.required and f.name not in targets and f.name not in constant_targets:
            raise missing_column(f.name, [c for c in columns if c not in used],
                                 spellings=f.aliases)
    if strict and spec.id_fields and not any(t in targets for t in spec.id_fields):
        raise InputError(
            f"no identifier column found (looked for {', '.join(spec.id_fields)} and their "
            f"usual spellings among: {', '.join(columns)}); map one with e.g. "
            f"--map customer_id=<column>",
            code="E_MISSING_COLUMN",
        )
    pii_lookup = {squash(k): v for k, v in pii_config.items()}
    pii = {c: pii_lookup[squash(c)] for c in columns if c not in used and squash(c) in pii_lookup}
    extra = tuple(c for c in columns if c not in used and c not in pii)
    return ColumnMapping(targets, frozenset(auto), pii, extra)
