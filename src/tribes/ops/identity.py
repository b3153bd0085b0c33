"""Identity repair (``tribes identity``): merge, split and block rules, checked and audited.

Stitching is rule-based (DESIGN §5); when it is wrong, a rule fixes it: ``merge`` makes
two customers one, ``split`` takes an anonymous/device id out of a customer, ``block``
stops an anonymous/device id (a shop's kiosk, a shared tablet) from linking anyone. Rules
are stored in ``identity_rules`` and applied by every later prep (see
:mod:`tribes.prep.stitch`), so features, segments and CLV follow at the next run. People
and ids are named as everywhere else (:func:`tribes.store.customer.resolve_customer`):
a raw id, pseudonymized with the workspace key, a stored pseudonym or a customer_key.
Rules keep pseudonymized ids only. Each change is one transaction with its audit record;
``undo`` ends a rule and keeps it listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.privacy import current_actor
from tribes.store import (
    ANON_PREFIX,
    KNOWN,
    IdentityRule,
    add_rule,
    list_rules,
    mark_undone,
    resolve_customer,
    resolve_ids,
)
from tribes.workspace import Workspace

CODE = "E_IDENTITY"
NEXT = "at the next tribes prep (or tribes run)"


@dataclass(frozen=True)
class RuleChange:
    """A rule made or undone, and what the next prep does with it."""

    rule: IdentityRule
    effect: str
    keys: list[str] = field(default_factory=list)  # customer_keys concerned, as of now

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.to_dict(), "effect": self.effect, "keys": self.keys}


def _refuse(message: str) -> InputError:
    return InputError(message, code=CODE)


def _person(ws: Workspace, engine: Engine, ident: str) -> tuple[str, str, str]:
    """(customer_key, id_type, id) of the person ``ident`` names: the id a rule stores for
    them is their customer_id, or for an anonymous customer the id named (for a
    customer_key ``anon:X``, the id X)."""
    key = resolve_customer(ws, engine, ident)
    if not key.startswith(ANON_PREFIX):
        return key, KNOWN, key
    rows = [r for r in _ids_named(ws, engine, ident) + _ids_named(ws, engine, key)
            if r["customer_key"] == key]
    if not rows:  # pragma: no cover - an anonymous key is made of one of its ids
        raise _refuse(f"no id of customer {key} found; run tribes prep and try again")
    r = rows[0]
    return key, str(r["id_type"]), str(r["id"])


def _ids_named(ws: Workspace, engine: Engine, ident: str) -> list[dict[str, Any]]:
    try:
        return resolve_ids(ws, engine, ident)
    except InputError as exc:
        if exc.code != "E_NOT_FOUND":
            raise
        return []


def _key_of(engine: Engine, id_type: str, ident: str) -> str | None:
    """The customer_key an id has now (None: not in the identities)."""
    ids = engine.table("identities")
    df = engine.execute(ids.filter((ids.id == ident) & (ids.id_type == id_type))
                        .select("customer_key"))
    return str(df["customer_key"].iloc[0]) if len(df) else None


def _merged_key(a: str, b: str) -> str:
    """The key of two customers merged: the smaller known id, else ``anon:`` + the
    smaller anonymous/device id (DESIGN §5's rule, for the merged customer)."""
    known = [k for k in (a, b) if not k.startswith(ANON_PREFIX)]
    return min(known) if known else min(a, b)


def merge_identities(ws: Workspace, engine: Engine, a: str, b: str, *, note: str = ""
                     ) -> RuleChange:
    """Make the customers ``a`` and ``b`` name one customer from the next prep on."""
    key_a, type_a, id_a = _person(ws, engine, a)
    key_b, type_b, id_b = _person(ws, engine, b)
    if key_a == key_b:
        raise _refuse(f"'{a}' and '{b}' are already one customer ({key_a}); nothing to "
                      "merge")
    named = {id_a, id_b} | {str(r["id"]) for i in (a, b) for r in _ids_named(ws, engine, i)
                            if r["id_type"] != KNOWN}
    for r in list_rules(engine):
        if r.action == "block" and r.a in named:
            raise _refuse(f"{r.a} is blocked by identity rule {r.rule_id}: it links nobody; "
                          f"undo that first: tribes identity undo {r.rule_id}")
        if r.action == "split" and r.b is not None and r.b_type is not None and {
                _key_of(engine, r.a_type, r.a), _key_of(engine, r.b_type, r.b)} == {
                key_a, key_b}:
            raise _refuse(f"identity rule {r.rule_id} split {r.b} out of this customer; "
                          f"undo it instead: tribes identity undo {r.rule_id}")
    new_key = _merged_key(key_a, key_b)
    effect = (f"{NEXT}: customers {key_a} and {key_b} become one customer, keyed "
              f"{new_key}; every id of both maps to it")
    with engine.transaction():
        rule = add_rule(engine, action="merge", a_type=type_a, a=id_a, b_type=type_b, b=id_b,
                        note=note, actor=current_actor())
        _audit(engine, "identity.merge", rule, [key_a, key_b], effect)
    return RuleChange(rule, effect, [key_a, key_b])


def split_identity(ws: Workspace, engine: Engine, person: str, ident: str, *,
                   note: str = "") -> RuleChange:
    """Take the anonymous/device id ``ident`` out of the customer ``person`` names."""
    key, type_a, id_a = _person(ws, engine, person)
    named = resolve_ids(ws, engine, ident)
    mine = [r for r in named if r["customer_key"] == key]
    if not mine:
        theirs = ", ".join(sorted({str(r["customer_key"]) for r in named}))
        raise _refuse(f"'{ident}' is not an id of customer {key} (it belongs to {theirs}); "
                      f"see their ids: tribes identity show {key}")
    row = next((r for r in mine if r["id_type"] != KNOWN), None)
    if row is None:
        raise _refuse(
            f"'{ident}' is a customer_id: split takes an anonymous or device id out of a "
            "customer; known customer ids are joined only by merge rules, so undo the "
            "merge instead (tribes identity rules lists them)")
    ids = engine.table("identities")
    rest = engine.execute(ids.filter((ids.customer_key == key) & (ids.id != row["id"]))
                          .select("id_type", "id").order_by(["id_type", "id"]).limit(1))
    if rest.empty:
        raise _refuse(f"customer {key} has no other id: nothing to split {row['id']} from")
    if id_a == row["id"]:  # the rule names the customer by one of the ids that stay
        type_a, id_a = str(rest["id_type"].iloc[0]), str(rest["id"].iloc[0])
    effect = (f"{NEXT}: {row['id']} leaves customer {key} and becomes customer "
              f"{ANON_PREFIX}{row['id']} (status split); ids that were linked to {key} "
              "only through it become customers of their own")
    with engine.transaction():
        rule = add_rule(engine, action="split", a_type=type_a, a=id_a,
                        b_type=str(row["id_type"]), b=str(row["id"]), note=note,
                        actor=current_actor())
        _audit(engine, "identity.split", rule, [key], effect)
    return RuleChange(rule, effect, [key])


def block_identifier(ws: Workspace, engine: Engine, ident: str, *, note: str = "") -> RuleChange:
    """Stop the anonymous/device id ``ident`` from linking anyone (a shared device)."""
    named = resolve_ids(ws, engine, ident)
    rows = [r for r in named if r["id_type"] != KNOWN]
    if not rows:
        raise _refuse(
            f"'{ident}' is a customer_id: block applies to anonymous and device ids (a "
            "shared kiosk or tablet). Known customer ids never join each other by data; "
            "to take an id out of a customer use tribes identity split")
    row = rows[0]
    done = [r for r in list_rules(engine) if r.action == "block" and r.a == row["id"]]
    if done:
        raise _refuse(f"{row['id']} is blocked already (identity rule {done[0].rule_id})")
    key = str(row["customer_key"])
    effect = (f"{NEXT}: {row['id']} links nobody; it becomes customer "
              f"{ANON_PREFIX}{row['id']} (status blocked)"
              + (f", and ids linked to {key} only through it become customers of their own"
                 if key != ANON_PREFIX + str(row["id"]) else ""))
    with engine.transaction():
        rule = add_rule(engine, action="block", a_type=str(row["id_type"]), a=str(row["id"]),
                        note=note, actor=current_actor())
        _audit(engine, "identity.block", rule, [key], effect)
    return RuleChange(rule, effect, [key])


def undo_rule(engine: Engine, rule_id: int) -> RuleChange:
    """End rule ``rule_id``; the next prep stitches as if it had never been made."""
    rules = {r.rule_id: r for r in list_rules(engine, include_undone=True)}
    rule = rules.get(rule_id)
    if rule is None:
        raise _refuse(f"no identity rule {rule_id}; see: tribes identity rules --all")
    if not rule.active:
        raise _refuse(f"identity rule {rule_id} was undone already ({rule.undone_at})")
    actor = current_actor()
    keys = sorted({k for k in (_key_of(engine, rule.a_type, rule.a),
                               _key_of(engine, rule.b_type or "", rule.b or ""))
                   if k is not None})
    effect = f"{NEXT}: identity rule {rule_id} ({_describe(rule)}) no longer applies"
    with engine.transaction():
        mark_undone(engine, rule_id, actor=actor)
        _audit(engine, "identity.undo", rule, keys, effect)
    done = next(r for r in list_rules(engine, include_undone=True) if r.rule_id == rule_id)
    return RuleChange(done, effect, keys)


def _describe(rule: IdentityRule) -> str:
    if rule.action == "merge":
        return f"merge {rule.a} with {rule.b}"
    if rule.action == "split":
        return f"split {rule.b} from {rule.a}"
    return f"block {rule.a}"


def _audit(engine: Engine, action: str, rule: IdentityRule, keys: list[str],
           effect: str) -> None:
    engine.audit(action, target=f"identity rule {rule.rule_id}", rows=1, keys=keys,
                 detail={"rule_id": rule.rule_id, "action": rule.action,
                         "a_type": rule.a_type, "a": rule.a, "b_type": rule.b_type,
                         "b": rule.b, "note": rule.note, "effect": effect})


def rules_table(engine: Engine, *, include_undone: bool = False) -> list[dict[str, Any]]:
    """The rules (made order) with the customer_key each id has now (null: not stitched
    yet, or no longer in the events)."""
    rules = list_rules(engine, include_undone=include_undone)
    ids = engine.table("identities")
    wanted = sorted({i for r in rules for i in (r.a, r.b) if i is not None})
    keys: dict[tuple[str, str], str] = {}
    if wanted:
        df = engine.execute(ids.filter(ids.id.isin(wanted))
                            .select("id_type", "id", "customer_key"))
        keys = {(str(t), str(i)): str(k) for t, i, k in df.itertuples(index=False)}
    return [{**r.to_dict(), "describe": _describe(r),
             "a_key": keys.get((r.a_type, r.a)),
             "b_key": keys.get((r.b_type, r.b)) if r.b_type and r.b else None}
            for r in rules]


def show_identity(ws: Workspace, engine: Engine, ident: str) -> dict[str, Any]:
    """A customer's ids with their status, and the rules in force that name any of them."""
    key = resolve_customer(ws, engine, ident)
    ids = engine.table("identities")
    df = engine.execute(ids.filter(ids.customer_key == key)
                        .select("id_type", "id", "status").order_by(["id_type", "id"]))
    rows = df.to_dict("records")
    mine = {str(r["id"]) for r in rows}
    rules = [r for r in rules_table(engine) if r["a"] in mine or r["b"] in mine]
    return {"customer_key": key, "ids": rows, "rules": rules}
