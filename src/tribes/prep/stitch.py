"""Identity stitching (DESIGN §5): which ids belong to one customer.

Ids seen on the same event are linked. Anonymous and device ids linked to more than
``max_ids`` other ids are shared devices and link nothing. The remaining anonymous/device
ids form connected components, found by label propagation in the engine: every id starts
with its own label, each pass takes the smallest label among its neighbours and then the
label of its label (pointer jumping), until no label changes. A component touching exactly
one known ``customer_id`` joins that customer; touching none, it is an anonymous customer;
touching two or more, it is ambiguous and stays an anonymous customer of its own. The data
never merges two known ids. ``customer_key`` is the known id, else ``anon:`` + the smallest
anonymous/device id of the component.

Identity rules (:mod:`tribes.store.identity_rules`, made with ``tribes identity``) repair
what the data gets wrong, applied in the order they were made:

- ``block``: the anonymous/device id links nothing, exactly as a shared id (status
  ``blocked``): it is its own customer ``anon:`` + id, and events carrying it belong to
  their customer_id, else anonymous id, else device id as always.
- ``split``: the anonymous/device id is cut out of the graph the same way (status
  ``split``); merges made before the split that name it no longer apply.
- ``merge``: the customers of two ids become one. Known customer_ids are joined only this
  way. A component whose touched known ids all belong to one merged customer joins it.
  The merged customer's key is its smallest known customer_id (DESIGN §5's rule), else
  ``anon:`` + its smallest anonymous/device id; its ids that joined only by the rule
  have status ``merged``. A merge naming a blocked id, or an id no longer in the
  events, is skipped.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.store import ANON_PREFIX, ID_COLUMNS, KNOWN, IdentityRule

log = logging.getLogger(__name__)

# id status in the identities table
STATUSES = {
    "known": "a known customer_id; it is its own customer_key",
    "linked": "anonymous/device id joined to the one known customer its component touches",
    "anonymous": "anonymous/device id of a component that touches no known id",
    "ambiguous": "anonymous/device id of a component touching two or more known ids",
    "shared": "anonymous/device id linked to more than max_ids_per_component ids; not linked",
    "blocked": "anonymous/device id blocked by an identity rule; links nothing",
    "split": "anonymous/device id split out of its customer by an identity rule; not linked",
    "merged": "id joined to its customer by an identity merge rule (a known id merged into "
              "another known customer keeps that customer's key)",
}
MAX_PASSES = 200

_LABELS = ("_st_labels_a", "_st_labels_b")
_TMP = ("_st_tuples", "_st_edges", "_st_off", "_st_labels", *_LABELS, "_st_nk",
        "_st_identities")


@dataclass(frozen=True)
class StitchReport:
    """What stitching found."""

    ids: int
    known_ids: int
    customers: int
    anonymous_customers: int
    linked_ids: int
    ambiguous_ids: int
    shared_ids: int
    passes: int
    blocked_ids: int = 0
    split_ids: int = 0
    merged_ids: int = 0
    rules: int = 0  # identity rules in force

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def id_edges(tuples: ir.Table) -> ir.Table:
    """Both directions of every link between two ids seen on one event (distinct)."""
    parts = []
    for a, b in itertools.combinations(ID_COLUMNS, 2):
        t = tuples.filter(tuples[a].notnull() & tuples[b].notnull())
        parts.append(t.select(src_type=ibis.literal(a), src=t[a],
                              dst_type=ibis.literal(b), dst=t[b]))
        parts.append(t.select(src_type=ibis.literal(b), src=t[b],
                              dst_type=ibis.literal(a), dst=t[a]))
    return ibis.union(*parts, distinct=True)


def id_nodes(tuples: ir.Table) -> ir.Table:
    """Every distinct (id_type, id)."""
    parts = [
        tuples.filter(tuples[c].notnull()).select(id_type=ibis.literal(c), id=tuples[c])
        for c in ID_COLUMNS
    ]
    return ibis.union(*parts, distinct=True)


def _node(id_type: ir.StringValue, value: ir.StringValue) -> ir.StringValue:
    # one string per (type, id); the one-letter prefix keeps it injective
    return id_type.substr(0, 1) + value


@dataclass(frozen=True)
class RulePlan:
    """The identity rules in force, as stitching applies them."""

    off: dict[str, str] = field(default_factory=dict)  # anonymous/device id -> status
    merges: tuple[tuple[tuple[str, str], tuple[str, str]], ...] = ()  # ((type, id), ...)
    rules: int = 0

    @classmethod
    def of(cls, rules: Sequence[IdentityRule]) -> RulePlan:
        off: dict[str, str] = {}
        merges: list[tuple[tuple[str, str], tuple[str, str]]] = []
        n = 0
        for r in sorted(rules, key=lambda r: r.rule_id):
            if not r.active:
                continue
            n += 1
            if r.action == "block":
                off[r.a] = "blocked"
            elif r.action == "split" and r.b is not None:
                off.setdefault(r.b, "split")
                # a split undoes the merges made before it that name the id
                merges = [m for m in merges
                          if not any(t != KNOWN and i == r.b for t, i in m)]
            elif r.action == "merge" and r.b is not None and r.b_type is not None:
                merges.append(((r.a_type, r.a), (r.b_type, r.b)))
        blocked = {i for i, st in off.items() if st == "blocked"}
        merges = [m for m in merges if not any(t != KNOWN and i in blocked for t, i in m)]
        return cls(off=off, merges=tuple(merges), rules=n)


def stitch(
    engine: Engine,
    events: ir.Table,
    *,
    max_ids: int = 50,
    rules: Sequence[IdentityRule] = (),
    on_pass: Callable[[int, int], None] | None = None,
    shared: ir.Table | None = None,
) -> tuple[ir.Table, StitchReport]:
    """Stitch the ids of ``events``; return the identities (a temporary table) and a report.

    The identities table has one row per (id_type, id) with its ``customer_key`` and a
    ``status`` (see :data:`STATUSES`). ``rules`` are the identity rules in force (see the
    module's doc). The caller stores it and drops ``_st_*`` temporaries with
    :func:`drop_temporaries`. ``on_pass(pass_number, changed_labels)`` reports progress.
    ``shared``: (id_type, id) of ids known to be shared although their links in ``events``
    alone are too few to tell (stitching a part of the graph: see
    :mod:`tribes.prep.incremental`).
    """
    plan = RulePlan.of(rules)
    tuples = engine.create_temp("_st_tuples", events.select(*ID_COLUMNS).distinct())
    edges = engine.create_temp("_st_edges", id_edges(tuples))
    nodes = id_nodes(tuples)

    degree = edges.group_by(["src_type", "src"]).aggregate(degree=edges.count())
    too_many = degree.filter((degree.src_type != KNOWN) & (degree.degree > max_ids)).select(
        id_type=degree.src_type, id=degree.src, status=ibis.literal("shared")
    )
    if shared is not None:
        told = shared.select("id_type", "id", status=ibis.literal("shared"))
        too_many = ibis.union(too_many, told, distinct=True)
    off = too_many
    if plan.off:
        # blocked and split ids link nothing, as shared ids (their status wins)
        ruled = ibis.memtable({"r_id": list(plan.off), "r_status": list(plan.off.values())},
                              schema={"r_id": "string", "r_status": "string"})
        other = nodes.filter(nodes.id_type != KNOWN)
        hits = other.join(ruled, other.id == ruled.r_id).select(
            "id_type", "id", status=ruled.r_status)
        off = ibis.union(hits, too_many.anti_join(hits, ["id_type", "id"]))
    off = engine.create_temp("_st_off", off)
    # anonymous/device ids that take part in linking
    linking = nodes.filter(nodes.id_type != KNOWN).anti_join(off, ["id_type", "id"])
    labels = engine.create_temp(
        "_st_labels",
        linking.mutate(node=_node(linking.id_type, linking.id)).mutate(
            label=ibis._.node
        ),
    )
    # edges between two linking ids
    lk = linking.select(l_type="id_type", l_id="id")
    nk_edges = edges.filter((edges.src_type != KNOWN) & (edges.dst_type != KNOWN))
    nk_edges = nk_edges.semi_join(lk, [nk_edges.src_type == lk.l_type, nk_edges.src == lk.l_id])
    lk2 = linking.select(l_type="id_type", l_id="id").view()
    nk_edges = nk_edges.view()
    nk_edges = nk_edges.semi_join(lk2, [nk_edges.dst_type == lk2.l_type,
                                        nk_edges.dst == lk2.l_id])
    nk = engine.create_temp(
        "_st_nk",
        nk_edges.select(src=_node(nk_edges.src_type, nk_edges.src),
                        dst=_node(nk_edges.dst_type, nk_edges.dst)),
    )

    passes = 0
    while True:
        passes += 1
        if passes > MAX_PASSES:  # pragma: no cover - label propagation always converges
            raise RuntimeError("identity stitching did not converge")
        # two tables in turn: each pass reads the other one
        labels = engine.create_temp(_LABELS[passes % 2], _propagate(labels, nk))
        changed = int(engine.scalar((labels.label != labels.old).sum()) or 0)
        if on_pass is not None:
            on_pass(passes, changed)
        log.debug("stitching pass %d: %d labels changed", passes, changed)
        if changed == 0:
            break

    merged = _merged_customers(engine, plan, nodes, labels, off, edges)
    identities = engine.create_temp("_st_identities",
                                    _identities(nodes, labels, edges, off, merged))
    report = stitch_report(engine, identities, passes, plan.rules)
    return identities, report


def _touches(edges: ir.Table, labels: ir.Table) -> ir.Table:
    """(label, known id) for every known id a component of linking ids touches."""
    lab = labels.select("id_type", "id", "label")
    touch = edges.filter((edges.src_type != KNOWN) & (edges.dst_type == KNOWN))
    touch = touch.join(lab, [touch.src_type == lab.id_type, touch.src == lab.id])
    return touch.select("label", known=touch.dst)


def _merged_customers(engine: Engine, plan: RulePlan, nodes: ir.Table, labels: ir.Table,
                      off: ir.Table, edges: ir.Table) -> dict[str, str]:
    """The customer_key of every unit the merge rules join: known ids (``c`` + id),
    components (their label) and ids that link nothing (their node). Empty without merges.

    The rules are few, so this runs in Python over their units only: union-find over the
    rules' pairs, then a component whose touched known ids all lie in one merged customer
    joins it, until nothing changes (joining only ever makes more components qualify).
    """
    if not plan.merges:
        return {}
    ends = {e for m in plan.merges for e in m}
    known_ids = sorted({i for t, i in ends if t == KNOWN})
    other = sorted({t[:1] + i for t, i in ends if t != KNOWN})
    kn = nodes.filter((nodes.id_type == KNOWN) & nodes.id.isin(known_ids))
    present = {"c" + str(i) for i in engine.execute(kn.select("id"))["id"]}
    lab = labels.filter(labels.node.isin(other))
    label_of = dict(engine.execute(lab.select("node", "label")).itertuples(index=False))
    offn = off.mutate(node=_node(off.id_type, off.id))
    offn = offn.filter(offn.node.isin(other) & (offn.status != "blocked"))
    lone = dict(engine.execute(offn.select("node", "id")).itertuples(index=False))

    def unit(end: tuple[str, str]) -> str | None:
        t, i = end
        node = t[:1] + i
        if t == KNOWN:
            return node if node in present else None
        return label_of.get(node, node if node in lone else None)

    pairs = [(unit(a), unit(b)) for a, b in plan.merges]
    skipped = sum(1 for a, b in pairs if a is None or b is None)
    if skipped:
        log.info("%d identity merge rule(s) name ids no longer in the events; skipped",
                 skipped)
    pairs_ok = [(a, b) for a, b in pairs if a is not None and b is not None]
    is_comp = set(label_of.values())
    comps = sorted({u for p in pairs_ok for u in p if u in is_comp})
    t = _touches(edges, labels)
    t = t.filter(t.label.isin(comps)).distinct()
    touched: dict[str, set[str]] = {}
    for lbl, k in engine.execute(t).itertuples(index=False):
        touched.setdefault(str(lbl), set()).add("c" + str(k))
    mins = labels.filter(labels.label.isin(comps))
    smallest = dict(engine.execute(mins.group_by("label").aggregate(m=mins.id.min()))
                    .itertuples(index=False))
    smallest.update(lone)

    parent: dict[str, str] = {}

    def find(u: str) -> str:
        parent.setdefault(u, u)
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    def join(u: str, v: str) -> bool:
        ru, rv = find(u), find(v)
        if ru == rv:
            return False
        parent[max(ru, rv)] = min(ru, rv)
        return True

    for a, b in pairs_ok:
        join(a, b)
    changed = True
    while changed:
        changed = False
        for c in comps:
            roots = {find(k) for k in touched.get(c, ())}
            if len(roots) == 1:
                changed |= join(c, roots.pop())
    groups: dict[str, list[str]] = {}
    for u in list(parent):
        groups.setdefault(find(u), []).append(u)
    key: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        # units of known ids are "c" + id; components and lone ids start "a" or "d"
        known = [u[1:] for u in members if u.startswith("c")]
        k = min(known) if known else ANON_PREFIX + min(str(smallest[u]) for u in members)
        key.update(dict.fromkeys(members, k))
    return key


def _propagate(labels: ir.Table, edges: ir.Table) -> ir.Table:
    """One pass: the smallest label among neighbours, then the label of that label."""
    lab = labels.select("node", "label")
    nb = (
        edges.join(lab, edges.dst == lab.node)
        .group_by(src=edges.src)
        .aggregate(nb_label=lab.label.min())
    )
    step = labels.left_join(nb, labels.node == nb.src).select(
        "id_type", "id", "node", old=labels.label,
        label=ibis.least(labels.label, nb.nb_label.fill_null(labels.label)),
    ).view()
    # pointer jumping: a label is itself a node of the same component
    hop = step.select(h_node="node", h_label="label")
    return step.left_join(hop, step.label == hop.h_node).select(
        "id_type", "id", "node", "old",
        label=ibis.least(step.label, hop.h_label.fill_null(step.label)),
    )


def _identities(nodes: ir.Table, labels: ir.Table, edges: ir.Table, off: ir.Table,
                merged: dict[str, str]) -> ir.Table:
    known = nodes.filter(nodes.id_type == KNOWN)
    anon = ibis.literal(ANON_PREFIX)
    lab = labels.select("id_type", "id", "label")
    touch = _touches(edges, labels)
    units = ibis.memtable({"u_node": list(merged), "u_key": list(merged.values())},
                          schema={"u_node": "string", "u_key": "string"})
    if merged:
        k = known.left_join(units, _node(known.id_type, known.id) == units.u_node)
        known_rows = k.select("id", "id_type", customer_key=k.u_key.fill_null(k.id),
                              status=ibis.ifelse(k.u_key.fill_null(k.id) == k.id, "known",
                                                 "merged"))
        o = off.left_join(units, _node(off.id_type, off.id) == units.u_node)
        off_rows = o.select("id", "id_type", customer_key=o.u_key.fill_null(anon + o.id),
                            status=ibis.ifelse(o.u_key.notnull(), "merged", o.status))
        # a known id merged into another customer counts as that customer
        t = touch.left_join(units, (ibis.literal("c") + touch.known) == units.u_node)
        touch = t.select("label", known=t.u_key.fill_null(t.known))
    else:
        known_rows = known.select("id", "id_type", customer_key=known.id,
                                  status=ibis.literal("known"))
        off_rows = off.select("id", "id_type", customer_key=anon + off.id, status=off.status)

    comp_known = touch.group_by("label").aggregate(
        n_known=touch.known.nunique(), known_id=touch.known.min()
    )
    comp_min = lab.group_by(c_label=lab.label).aggregate(min_id=lab.id.min())
    comp = comp_min.left_join(comp_known, comp_min.c_label == comp_known.label).select(
        "c_label", "min_id", n_known=comp_known.n_known.fill_null(0), known_id="known_id"
    )
    j = lab.join(comp, lab.label == comp.c_label)
    by_data = ibis.cases((j.n_known == 1, "linked"), (j.n_known == 0, "anonymous"),
                         else_="ambiguous")
    key = ibis.ifelse(j.n_known == 1, j.known_id, anon + j.min_id)
    if not merged:
        linked_rows = j.select("id", "id_type", customer_key=key, status=by_data)
        return ibis.union(known_rows, off_rows, linked_rows)
    j = j.mutate(d_key=key, d_status=by_data)
    j = j.left_join(units, j.label == units.u_node)
    # joined by a merge rule: 'merged', unless the data alone links it to that customer
    ruled = j.u_key.notnull() & ((j.d_status != "linked") | (j.d_key != j.u_key))
    linked_rows = j.select("id", "id_type", customer_key=j.u_key.fill_null(j.d_key),
                           status=ibis.ifelse(ruled, "merged", j.d_status))
    return ibis.union(known_rows, off_rows, linked_rows)


def stitch_report(engine: Engine, identities: ir.Table, passes: int, rules: int
                  ) -> StitchReport:
    """The counts of an identities table (``passes``: label propagation's, ``rules``: the
    identity rules in force)."""
    by_status = engine.execute(identities.group_by("status").aggregate(
        n=identities.count(),
        n_known=(identities.id_type == KNOWN).cast("int64").sum()))
    counts = dict(zip(by_status["status"], by_status["n"], strict=True))
    keys = identities.select("customer_key").distinct()
    row = engine.execute(
        keys.aggregate(
            customers=keys.count(),
            anonymous=keys.customer_key.startswith(ANON_PREFIX).cast("int64").sum(),
        )
    ).iloc[0]
    return StitchReport(
        ids=int(sum(counts.values())),
        known_ids=int(by_status["n_known"].sum()),
        customers=int(row["customers"]),
        anonymous_customers=int(row["anonymous"] or 0),
        linked_ids=int(counts.get("linked", 0)),
        ambiguous_ids=int(counts.get("ambiguous", 0)),
        shared_ids=int(counts.get("shared", 0)),
        passes=passes,
        blocked_ids=int(counts.get("blocked", 0)),
        split_ids=int(counts.get("split", 0)),
        merged_ids=int(counts.get("merged", 0)),
        rules=rules,
    )


def drop_temporaries(engine: Engine) -> None:
    for name in _TMP:
        engine.drop_temp(name)
