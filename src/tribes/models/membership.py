"""A stored segment version applied to today's customers, in the engine, and the refresh
of a version's memberships with it.

A refresh is not a new segmentation: the version keeps its transform, model, metrics and
segment ids; only who is in which segment follows the customers. :func:`apply_version`
rebuilds the assignment a version's fit made (the same engine expressions from the same
stored numbers, :meth:`tribes.models.methods.Segmenter.assign_from_params`), so applied to
the customers it was fitted on it gives its stored memberships exactly, and a new customer
the segment the fit would have given them. :func:`refresh_memberships` applies the active
(or a given) version to every customer of ``customer_features`` now and stores the result
as the version's memberships (:func:`tribes.store.replace_memberships`): new customers
join, changed ones may move, customers no longer in the features (erased, or excluded by
consent) leave.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.features import FEATURES_TABLE, last_features
from tribes.models.assign import NOISE, rule_assign
from tribes.models.methods import segmenter_class
from tribes.models.segmentation import rfm_names
from tribes.stats import Transform
from tribes.store import (
    add_segments,
    get_run,
    next_segment_id,
    replace_memberships,
    require_version,
)

log = logging.getLogger(__name__)
_TMP = "_rf_labels"


def version_columns(run: dict[str, Any]) -> list[str]:
    """The columns of ``customer_features`` a version's model reads."""
    if run["method"] == "rfm":
        return ["rfm_label"]
    return list(Transform.from_dict(run["transform"]).features)


def version_labels(t: ir.Table, run: dict[str, Any]) -> ir.Table:
    """The model labels a stored version gives the customers of ``t``, in the engine.

    Parameters
    ----------
    t : ibis.expr.types.Table
        Customer table with ``customer_key`` and the raw features (``customer_features``
        or any table of its columns).
    run : dict
        The version's run as :func:`tribes.store.get_run` gives it (``method``,
        ``transform``, ``model``).

    Returns
    -------
    ibis.expr.types.Table
        ``customer_key``, ``label`` (the model's, int64) and ``probability``.
    """
    model = run["model"] or {}
    if run["method"] == "rfm":
        return rule_assign(t, list(model.get("labels") or rfm_names()))
    if not run["transform"]:
        raise InputError(f"version {run['version']} keeps no transform, so its model "
                         "cannot assign customers; segment again: tribes run --resegment",
                         code="E_VERSION")
    return segmenter_class(run["method"]).assign_from_params(
        model, t, Transform.from_dict(run["transform"]))


def segment_map(run: dict[str, Any]) -> dict[int, int]:
    """Model label -> segment id of a stored version (noise stays -1)."""
    stored = (run["model"] or {}).get("labels_to_segments") or {}
    return {NOISE: NOISE, **{int(a): int(b) for a, b in stored.items()}}


def apply_version(t: ir.Table, run: dict[str, Any]) -> ir.Table:
    """The segments a stored version gives the customers of ``t``, in the engine (no
    collect): its transform, its model and its label -> segment id map.

    Applied to the customers the version was fitted on, this is the version's stored
    assignment, exactly; a customer it has never seen gets the segment the fit would
    have given them (the nearest centroid, within its radius for the density methods,
    the most likely component for a mixture, the rule's label for RFM). A label no
    customer had at the fit (an RFM rule nobody matched then) has no segment id (null)
    until a refresh gives it one (:func:`refresh_memberships`).

    Parameters
    ----------
    t : ibis.expr.types.Table
        Customer table with ``customer_key`` and the raw features.
    run : dict
        The version's run as :func:`tribes.store.get_run` gives it.

    Returns
    -------
    ibis.expr.types.Table
        ``customer_key``, ``segment_id`` (int64) and ``probability``.
    """
    a = version_labels(t, run)
    return a.select("customer_key", segment_id=_segment_of(a.label, segment_map(run)),
                    probability="probability")


def _segment_of(label: ir.IntegerValue, mapping: dict[int, int]) -> ir.IntegerValue:
    """The segment id of a model label; null for a label the map lacks."""
    return ibis.cases(*[(label == k, v) for k, v in mapping.items()],
                      else_=ibis.null("int64")).cast("int64")


@dataclass(frozen=True)
class MembershipRefresh:
    """What a refresh of a version's memberships did."""

    version: int
    trigger: str  # run, activate, rollback
    features_run: str | None
    customers: int  # members now
    new: int  # members now who were not before
    moved: int  # members before and now, in another segment
    left: int  # members before who are not now
    sizes: dict[int, int] = field(default_factory=dict)  # segment id -> members now
    added_segments: dict[int, str] = field(default_factory=dict)  # new ids -> names

    @property
    def changed(self) -> bool:
        return bool(self.new or self.moved or self.left)

    def describe(self) -> str:
        """``refreshed version 3: 120 new, 14 moved, 2 left``."""
        text = (f"refreshed version {self.version}: {self.new:,} new, {self.moved:,} moved, "
                f"{self.left:,} left")
        if self.added_segments:
            text += " (first members of " + ", ".join(
                f"segment {sid} {name}" for sid, name in self.added_segments.items()) + ")"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "trigger": self.trigger,
                "features_run": self.features_run, "customers": self.customers,
                "new": self.new, "moved": self.moved, "left": self.left,
                "sizes": {str(k): v for k, v in self.sizes.items()},
                "added_segments": {str(k): v for k, v in self.added_segments.items()},
                "summary": self.describe()}


def refresh_memberships(engine: Engine, version: int | None = None, *,
                        trigger: str = "run") -> MembershipRefresh:
    """Assign every customer of ``customer_features`` with a stored version's own model
    and make that the version's memberships (its run, metrics and ids stay as they are).

    Parameters
    ----------
    engine : Engine
        The workspace's engine.
    version : int, optional
        The version to refresh; default the active one.
    trigger : str
        What set it off, for the log: ``run``, ``activate``, ``rollback``.

    Returns
    -------
    MembershipRefresh
        Members now, and how many are new, moved or left.

    Raises
    ------
    InputError
        ``E_NO_FEATURES``: no customer features; ``E_FEATURE``: the features lack a
        column the version's model reads (rebuild them, or segment again).
    """
    v = require_version(engine, version, purpose="to refresh")
    run = get_run(engine, v)
    if not engine.has_table(FEATURES_TABLE):
        raise InputError("no customer features yet; build them with: tribes features",
                         code="E_NO_FEATURES")
    t = engine.table(FEATURES_TABLE)
    missing = [c for c in version_columns(run) if c not in t.columns]
    if missing:
        raise InputError(f"version {v} reads {missing}, which customer_features lacks; "
                         "rebuild the features (tribes features) or segment again "
                         "(tribes run --resegment)", code="E_FEATURE")
    features_run = (last_features(engine) or {}).get("run_id")
    try:
        labels = engine.create_temp(_TMP, version_labels(t, run))
        with engine.transaction():
            added = _name_unseen(engine, v, run, labels)
            if added:
                run = get_run(engine, v)
            rows = labels.select("customer_key",
                                 segment_id=_segment_of(labels.label, segment_map(run)),
                                 probability="probability")
            done = replace_memberships(engine, v, rows, features_run=features_run,
                                       trigger=trigger)
    finally:
        engine.drop_temp(_TMP)
    result = MembershipRefresh(
        version=v, trigger=trigger, features_run=features_run,
        customers=done["customers"], new=done["new"], moved=done["moved"],
        left=done["left"], sizes=done["sizes"],
        added_segments={sid: name for sid, name in added.values()})
    log.info("%s", result.describe())
    return result


def _name_unseen(engine: Engine, version: int, run: dict[str, Any], labels: ir.Table
                 ) -> dict[int, tuple[int, str]]:
    """Segment ids for the labels of ``labels`` that the version's map lacks (an RFM rule
    no customer matched at the fit), stored with the version; label -> (id, name)."""
    known = segment_map(run)
    present = engine.execute(labels.select("label").distinct())["label"]
    unseen = sorted(int(lab) for lab in present if int(lab) not in known)
    if not unseen:
        return {}
    names = list((run["model"] or {}).get("labels") or []) if run["method"] == "rfm" else []
    first = next_segment_id(engine)
    added = {lab: (first + i, names[lab] if lab < len(names) else f"Segment {first + i}")
             for i, lab in enumerate(unseen)}
    add_segments(engine, version, added)
    return added
