"""Persona names and recommended actions, from how a segment differs from everyone.

Rule (data-driven, not by segment index):

1. For each segment, the lift of every feature is the z-score of the segment mean against
   the population (``(segment mean - population mean) / population std``).
2. Each archetype below is a signature: features with a sign and a weight. Its score for
   a segment is the weighted mean of the signed lifts of the features it names (a feature
   missing from the data counts as no lift).
3. An archetype is only open to a segment whose own figures meet its rule (medians: a
   segment whose median member never bought is not "former buyers"). Archetypes are
   assigned to segments by the Hungarian method on the scores, so no two segments share
   an archetype. A segment keeps its archetype only if the score is at
   least :data:`MIN_SCORE` (clearly distinguishing); otherwise its name is built from its
   two largest lifts ("More support contacts, fewer orders").
4. Names are made unique; the action follows the archetype, or the largest lift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_SCORE = 0.35

# per feature of a segment: its "median" and the "population_median"
Figures = Mapping[str, Mapping[str, Any]]


def _median(fig: Figures, feature: str) -> float | None:
    v = fig.get(feature, {}).get("median")
    return None if v is None or v != v else float(v)


def _above(fig: Figures, feature: str) -> bool:
    m, p = _median(fig, feature), fig.get(feature, {}).get("population_median")
    return m is not None and p is not None and p == p and m > float(p)


def _below(fig: Figures, feature: str) -> bool:
    m, p = _median(fig, feature), fig.get(feature, {}).get("population_median")
    return m is not None and p is not None and p == p and m < float(p)


def _buys(fig: Figures, orders: int = 1) -> bool:
    m = _median(fig, "frequency")
    return m is not None and m >= orders


def _never_bought(fig: Figures) -> bool:
    m = _median(fig, "frequency")
    return m is not None and m == 0


@dataclass(frozen=True)
class Archetype:
    name: str
    signature: dict[str, float]
    campaign: str
    action: str
    # what the segment's own figures must show for the name to be true of its members
    rule: str = ""
    holds: Callable[[Figures], bool] = field(default=lambda fig: True, compare=False)


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("High-value loyalists",
              {"monetary": 1.0, "frequency": 1.0, "recency_days": -0.6, "aov": 0.4},
              "loyalty rewards",
              "Reward and retain them: loyalty tiers, early access to new products, "
              "referral incentives; avoid blanket discounts they do not need.",
              "the median member has 2 or more orders and spends more than the median "
              "customer", lambda f: _buys(f, 2) and _above(f, "monetary")),
    Archetype("Bargain hunters",
              {"aov": -1.0, "frequency": 0.4, "distinct_categories": 0.4,
               "cart_abandonment_rate": 0.3},
              "price-led promotions",
              "Target with deals and bundles on their categories; use price-drop alerts "
              "and volume offers to lift basket size.",
              "the median member has an order, of a smaller value than the median "
              "customer's", lambda f: _buys(f) and _below(f, "aov")),
    Archetype("Window shoppers",
              {"cart_abandonment_rate": 1.0, "frequency": -1.0, "monetary": -0.6,
               "avg_session_duration_s": 0.4},
              "conversion nudges",
              "Convert intent: abandoned-cart reminders, first-order incentive, social "
              "proof and free-shipping thresholds on the products they view.",
              "the median member never bought and leaves carts",
              lambda f: _never_bought(f) and (_median(f, "cart_abandonment_rate") or 0) > 0),
    Archetype("New explorers",
              {"tenure_days": -1.0, "distinct_categories": 0.6, "sessions_per_week": 0.6},
              "onboarding and education",
              "Onboard them: welcome series, guides across categories, a second-purchase "
              "offer to build the habit.",
              "the median member is newer than the median customer",
              lambda f: _below(f, "tenure_days")),
    Archetype("Lapsing former buyers",
              {"recency_days": 1.0, "purchase_recency_days": 0.6, "tenure_days": 0.3},
              "re-engagement incentive",
              "Win them back before they churn: personalised re-engagement offer, "
              "reminders of past favourites, a 'we miss you' incentive with a deadline.",
              "the median member has bought and was last seen longer ago than the median "
              "customer", lambda f: _buys(f) and _above(f, "recency_days")),
    Archetype("Support-heavy customers",
              {"support_contacts": 1.0},
              "service recovery",
              "Fix the friction: proactive service follow-up, self-service content for "
              "their common issues; hold promotions until issues are resolved.",
              "the median member has contacted support",
              lambda f: (_median(f, "support_contacts") or 0) >= 1),
    Archetype("Engaged browsers",
              {"sessions_per_week": 1.0, "events_per_session": 0.6, "frequency": -0.4},
              "cross-sell and education",
              "Turn engagement into orders: recommendations, content on product value, "
              "limited-time offers on repeatedly viewed items.",
              "the median member visits more often than the median customer",
              lambda f: _above(f, "sessions_per_week")),
    Archetype("Occasional buyers",
              {"frequency": -0.6, "n_sessions": -0.6, "monetary": -0.3},
              "cross-sell and education",
              "Raise frequency: replenishment reminders, cross-sell to adjacent "
              "categories, seasonal campaigns.",
              "the median member has bought, but no more often than the median customer",
              lambda f: _buys(f) and not _above(f, "frequency")),
)

# the action for a fallback name, by its largest lift: (feature, sign) -> campaign, action
FALLBACK_ACTIONS: dict[tuple[str, int], tuple[str, str]] = {
    ("recency_days", 1): ("re-engagement incentive", "Re-engage before they churn."),
    ("monetary", 1): ("loyalty rewards", "Recognise and retain high spenders."),
    ("frequency", -1): ("cross-sell and education", "Give reasons to come back more often."),
    ("support_contacts", 1): ("service recovery", "Resolve service issues first."),
    ("cart_abandonment_rate", 1): ("conversion nudges", "Remind and reassure at checkout."),
}
DEFAULT_ACTION = ("monitor", "Monitor; test small campaigns to learn what moves them.")

# words for fallback names
WORDS: dict[str, tuple[str, str]] = {
    "recency_days": ("long inactive", "recently active"),
    "tenure_days": ("long-standing", "new"),
    "frequency": ("frequent buyers", "rare buyers"),
    "monetary": ("high spend", "low spend"),
    "aov": ("large baskets", "small baskets"),
    "sessions_per_week": ("frequent visits", "rare visits"),
    "events_per_session": ("deep sessions", "short sessions"),
    "avg_session_duration_s": ("long sessions", "brief sessions"),
    "distinct_categories": ("broad interests", "narrow interests"),
    "cart_abandonment_rate": ("abandon carts", "complete carts"),
    "support_contacts": ("many support contacts", "no support needs"),
    "engagement_score": ("highly engaged", "barely engaged"),
}


@dataclass(frozen=True)
class Naming:
    name: str
    archetype: str | None
    score: float
    campaign: str
    action: str
    rule: str = ""  # what the segment's figures show for the archetype's name


def archetype_scores(lifts: Mapping[int, Mapping[str, float]]) -> np.ndarray:
    """segments x archetypes matrix of scores (weighted mean of signed lifts)."""
    segs = list(lifts)
    out = np.full((len(segs), len(ARCHETYPES)), -np.inf)
    for i, s in enumerate(segs):
        for j, a in enumerate(ARCHETYPES):
            used = {f: w for f, w in a.signature.items()
                    if f in lifts[s] and np.isfinite(lifts[s][f])}
            if used:  # a feature missing from the data is no evidence (counts as 0)
                out[i, j] = sum(w * lifts[s][f] for f, w in used.items()) / sum(
                    abs(w) for w in a.signature.values())
    return out


def fallback_name(lift: Mapping[str, float]) -> tuple[str, tuple[str, int] | None]:
    ranked = sorted(((abs(v), f, v) for f, v in lift.items() if f in WORDS and np.isfinite(v)),
                    reverse=True)
    words = [WORDS[f][0] if v > 0 else WORDS[f][1] for _, f, v in ranked[:2]]
    top = (ranked[0][1], 1 if ranked[0][2] > 0 else -1) if ranked else None
    if not words:
        return "Typical customers", None
    name = ", ".join(words)
    return name[0].upper() + name[1:], top


def name_segments(lifts: Mapping[int, Mapping[str, float]],
                  figures: Mapping[int, Figures] | None = None) -> dict[int, Naming]:
    """A unique name, campaign type and action for each segment from its feature lifts.

    With ``figures`` (per segment and feature: its median and the population's), an
    archetype is only given to a segment whose figures meet its rule (a segment whose
    median member never bought is not "former buyers", however its lifts point)."""
    segs = list(lifts)
    if not segs:
        return {}
    scores = archetype_scores(lifts)
    if figures is not None:
        for i, s in enumerate(segs):
            for j, a in enumerate(ARCHETYPES):
                if not a.holds(figures.get(s, {})):
                    scores[i, j] = -np.inf
    finite = np.where(np.isfinite(scores), scores, -1e6)
    from scipy.optimize import linear_sum_assignment  # slow to import: on use

    rows, cols = linear_sum_assignment(-finite)
    chosen = {segs[i]: (ARCHETYPES[j], float(scores[i, j])) for i, j in zip(rows, cols,
                                                                          strict=True)}
    out: dict[int, Naming] = {}
    used: set[str] = set()
    for s in segs:
        arch, score = chosen.get(s, (None, float("-inf")))
        rule = ""
        if arch is not None and score >= MIN_SCORE:
            name, campaign, action, label = arch.name, arch.campaign, arch.action, arch.name
            rule = arch.rule
        else:
            name, top = fallback_name(lifts[s])
            campaign, action = FALLBACK_ACTIONS.get(top, DEFAULT_ACTION) if top else \
                DEFAULT_ACTION
            label = None
        base, i = name, 2
        while name in used:
            name, i = f"{base} ({i})", i + 1
        used.add(name)
        out[s] = Naming(name=name, archetype=label,
                        score=score if np.isfinite(score) else 0.0,
                        campaign=campaign, action=action, rule=rule)
    return out
