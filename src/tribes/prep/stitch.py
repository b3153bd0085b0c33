"""Identity stitching (DESIGN §5): which ids belong to one customer.

Ids seen on the same event are linked. Anonymous and device ids linked to more than
``max_ids`` other ids are shared devices and link nothing. The remaining anonymous/device
ids form connected components, found by label propagation in the engine: every id starts
with its own label, each pass takes the smallest label among its neighbours and then the
label of its label (pointer jumping), until no label changes. A component touching exactly
one known ``customer_id`` joins that customer; touching none, it is an anonymous customer;
touching two or more, it is ambiguous and stays an anonymous customer of its own. Two known
ids are never merged. ``customer_key`` is the known id, else ``anon:`` + the smallest
anonymous/device id of the component.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.store.keyed import ID_COLUMNS, KNOWN

log = logging.getLogger(__name__)

ANON_PREFIX = "anon:"
# id status in the identities table
STATUSES = {
    "known": "a known customer_id; it is its own customer_key",
    "linked": "anonymous/device id joined to the one known customer its component touches",
    "anonymous": "anonymous/device id of a component that touches no known id",
    "ambiguous": "anonymous/device id of a component touching two or more known ids",
    "shared": "anonymous/device id linked to more than max_ids_per_component ids; not linked",
}
MAX_PASSES = 200

_LABELS = ("_st_labels_a", "_st_labels_b")
_TMP = ("_st_tuples", "_st_edges", "_st_labels", *_LABELS, "_st_nk", "_st_identities")


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


def stitch(
    engine: Engine,
    events: ir.Table,
    *,
    max_ids: int = 50,
    on_pass: Callable[[int, int], None] | None = None,
) -> tuple[ir.Table, StitchReport]:
    """Stitch the ids of ``events``; return the identities (a temporary table) and a report.

    The identities table has one row per (id_type, id) with its ``customer_key`` and a
    ``status`` (see :data:`STATUSES`). The caller stores it and drops ``_st_*`` temporaries
    with :func:`drop_temporaries`. ``on_pass(pass_number, changed_labels)`` reports progress.
    """
    tuples = engine.create_temp("_st_tuples", events.select(*ID_COLUMNS).distinct())
    edges = engine.create_temp("_st_edges", id_edges(tuples))
    nodes = id_nodes(tuples)

    degree = edges.group_by(["src_type", "src"]).aggregate(degree=edges.count())
    shared = degree.filter((degree.src_type != KNOWN) & (degree.degree > max_ids)).select(
        id_type=degree.src_type, id=degree.src
    )
    # anonymous/device ids that take part in linking
    linking = nodes.filter(nodes.id_type != KNOWN).anti_join(shared, ["id_type", "id"])
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

    identities = engine.create_temp("_st_identities",
                                    _identities(nodes, labels, edges, shared))
    report = _report(engine, identities, passes)
    return identities, report


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


def _identities(nodes: ir.Table, labels: ir.Table, edges: ir.Table,
                shared: ir.Table) -> ir.Table:
    known = nodes.filter(nodes.id_type == KNOWN)
    known_rows = known.select("id", "id_type", customer_key=known.id,
                              status=ibis.literal("known"))
    shared_rows = shared.select("id", "id_type", customer_key=ibis.literal(ANON_PREFIX) + shared.id,
                                status=ibis.literal("shared"))

    lab = labels.select("id_type", "id", "label")
    touch = edges.filter((edges.src_type != KNOWN) & (edges.dst_type == KNOWN))
    touch = touch.join(lab, [touch.src_type == lab.id_type, touch.src == lab.id])
    comp_known = touch.group_by("label").aggregate(
        n_known=touch.dst.nunique(), known_id=touch.dst.min()
    )
    comp_min = lab.group_by(c_label=lab.label).aggregate(min_id=lab.id.min())
    comp = comp_min.left_join(comp_known, comp_min.c_label == comp_known.label).select(
        "c_label", "min_id", n_known=comp_known.n_known.fill_null(0), known_id="known_id"
    )
    j = lab.join(comp, lab.label == comp.c_label)
    anon_key = ibis.literal(ANON_PREFIX) + j.min_id
    linked_rows = j.select(
        "id", "id_type",
        customer_key=ibis.ifelse(j.n_known == 1, j.known_id, anon_key),
        status=ibis.cases((j.n_known == 1, "linked"), (j.n_known == 0, "anonymous"),
                          else_="ambiguous"),
    )
    return ibis.union(known_rows, shared_rows, linked_rows)


def _report(engine: Engine, identities: ir.Table, passes: int) -> StitchReport:
    by_status = engine.execute(identities.group_by("status").aggregate(n=identities.count()))
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
        known_ids=int(counts.get("known", 0)),
        customers=int(row["customers"]),
        anonymous_customers=int(row["anonymous"] or 0),
        linked_ids=int(counts.get("linked", 0)),
        ambiguous_ids=int(counts.get("ambiguous", 0)),
        shared_ids=int(counts.get("shared", 0)),
        passes=passes,
    )


def drop_temporaries(engine: Engine) -> None:
    for name in _TMP:
        engine.drop_temp(name)
