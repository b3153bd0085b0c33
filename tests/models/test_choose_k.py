"""Choosing k: planted groups of several shapes and sizes are found exactly, five planted
behavioural archetypes give five segments, and the report says what decided."""

from __future__ import annotations

from dataclasses import replace

import ibis
import numpy as np
import pandas as pd
import pytest
from scipy.stats import special_ortho_group
from sklearn.metrics import adjusted_rand_score

from tests.stages import context
from tribes.config import SegmentConfig
from tribes.models.methods import make_segmenter
from tribes.models.segmentation import Prepared, choose_k, fit_stable, run_segmentation
from tribes.models.selection import (
    MIN_JACCARD,
    MIN_SEPARATION,
    KScore,
    KSelection,
    dequantize,
    fit_best,
    select_k,
    separation,
)
from tribes.stats.scaling import fit_transform
from tribes.store.db import init_workspace, open_engine

CFG = SegmentConfig()
SEEDS = range(10)


def kmeans(k: int, seed: int):  # type: ignore[no-untyped-def]
    return make_segmenter("kmeans", k, CFG, seed)


def sizes(k: int, n: int, rng: np.random.Generator, alpha: float = 2.0,
          floor: float = 0.25) -> np.ndarray:
    """Unequal group sizes: Dirichlet(alpha) shares, mixed with a uniform ``floor``."""
    share = (1 - floor) * rng.dirichlet(np.full(k, alpha)) + floor / k
    return rng.multinomial(n, share)


def planted(k: int, n: int, dim: int, seed: int, *, sep: float = 2.25, aniso: float = 2.0,
            skew: float = 0.0, hetero: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` groups in ``dim`` standardized dimensions.

    Each group is Gaussian with its own rotation and axis spreads (a ratio up to
    ``aniso`` between its longest and shortest axis, and an overall scale factor up to
    ``exp(hetero)`` either way), optionally skewed along its axes (``skew``: a log-normal
    shape, ``(exp(g z) - E) / g``, as spends and durations have). Centres are drawn so
    that every pair lies at least ``sep`` times the sum of the two groups' spreads along
    the line between them (``sep`` 2.25: about 4.5 standard deviations for equal spreads;
    their densities overlap in the tails, the groups are distinct). Sizes:
    :func:`sizes`.
    """
    rng = np.random.default_rng(seed)
    counts = sizes(k, n, rng)
    rots = [special_ortho_group.rvs(dim, random_state=rng) for _ in range(k)]
    sds = [np.exp(rng.uniform(-np.log(aniso) / 2, np.log(aniso) / 2, dim)
                  + rng.uniform(-hetero, hetero)) for _ in range(k)]

    def spread(i: int, u: np.ndarray) -> float:
        return float(np.sqrt((((rots[i].T @ u) * sds[i]) ** 2).sum()))

    centres: list[np.ndarray] = []
    scale = 3.0
    while len(centres) < k:
        for _ in range(2000):
            c = rng.normal(0, scale, dim)
            if all(np.linalg.norm(c - m) >= sep * (spread(len(centres), (c - m) / np.linalg.norm(
                    c - m)) + spread(j, (c - m) / np.linalg.norm(c - m)))
                   for j, m in enumerate(centres)):
                centres.append(c)
                break
        else:
            scale *= 1.2
    xs, ys = [], []
    for i in range(k):
        z = rng.normal(size=(counts[i], dim))
        if skew:
            g = rng.choice([-1.0, 1.0], dim) * skew
            z = (np.exp(g * z) - np.exp(g ** 2 / 2)) / (g * np.exp(g ** 2 / 2))
        xs.append((z * sds[i]) @ rots[i].T + centres[i])
        ys.append(np.full(counts[i], i))
    x, y = np.vstack(xs), np.concatenate(ys)
    return (x - x.mean(axis=0)) / x.std(axis=0), y


# log-levels of the behavioural features: orders, aov, sessions/week, events/session,
# session seconds, categories, recency days; and the cart abandonment share
RANGES = [(np.log(2), np.log(16)), (np.log(20), np.log(300)), (np.log(0.15), np.log(1.5)),
          (np.log(2), np.log(14)), (np.log(60), np.log(1200)), (np.log(2), np.log(9)),
          (np.log(3), np.log(120)), (0.05, 0.9)]


def behavioural(k: int, n: int, seed: int, gap: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """``k`` groups of buyers in raw behavioural units, through the model transform.

    Each group's profile is a point of the unit cube mapped onto the feature ranges
    (profiles at least ``gap`` apart); customers draw orders (1 + Poisson), categories
    (1 + Poisson), log-normal order values, sessions and durations, gamma recency and
    beta cart abandonment around it. The default transform (log1p of the skewed features,
    standard scaling) gives groups of unequal spread with skewed, discrete and
    multiplicative noise, as customer features have.
    """
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), sizes(k, n, rng))
    profiles: list[np.ndarray] = []
    while len(profiles) < k:
        p = rng.uniform(size=len(RANGES))
        if all(np.linalg.norm(p - q) >= gap for q in profiles):
            profiles.append(p)
    lv = np.array([[lo + (hi - lo) * v for (lo, hi), v in zip(RANGES, p, strict=True)]
                   for p in profiles])[y]
    orders = 1 + rng.poisson(np.exp(lv[:, 0]) - 1)
    aov = rng.lognormal(lv[:, 1], 0.3)
    df = pd.DataFrame({
        "frequency": orders.astype(float), "aov": aov, "monetary": orders * aov,
        "sessions_per_week": rng.lognormal(lv[:, 2], 0.3),
        "events_per_session": rng.lognormal(lv[:, 3], 0.25),
        "avg_session_duration_s": rng.lognormal(lv[:, 4], 0.3),
        "distinct_categories": 1.0 + rng.poisson(np.exp(lv[:, 5]) - 1),
        "recency_days": rng.gamma(8.0, np.exp(lv[:, 6]) / 8.0),
        "cart_abandonment_rate": rng.beta(15 * lv[:, 7], 15 * (1 - lv[:, 7])),
    })
    tr = fit_transform(df, list(df.columns), log1p=CFG.log1p, scaler=CFG.scaler,
                       impute=CFG.impute)
    return tr.apply(df), y


# (name, generator): each plants a known k; the automatic k must be exact in >= 9 of 10
GENERATORS = [
    ("3 anisotropic groups", lambda s: planted(3, 600, 5, 300 + s, aniso=3.0)),
    ("4 skewed groups of unequal spread",
     lambda s: planted(4, 800, 6, 400 + s, skew=0.4, hetero=0.4)),
    ("5 behavioural groups", lambda s: behavioural(5, 1000, 500 + s)),
    pytest.param("6 skewed anisotropic groups",
                 lambda s: planted(6, 1200, 8, 600 + s, skew=0.4, hetero=0.3),
                 marks=pytest.mark.slow),
    pytest.param("7 behavioural groups", lambda s: behavioural(7, 1400, 700 + s),
                 marks=pytest.mark.slow),
    pytest.param("8 skewed groups of unequal spread",
                 lambda s: planted(8, 1500, 10, 800 + s, skew=0.5, hetero=0.4),
                 marks=pytest.mark.slow),
    pytest.param("6 behavioural groups", lambda s: behavioural(6, 1200, 600 + s),
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "generate"), GENERATORS,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_planted_k_is_found(name: str, generate) -> None:  # type: ignore[no-untyped-def]
    k = int(name.split()[0])
    found = []
    for s in SEEDS:
        x, y = generate(s)
        assert len(np.unique(y)) == k and np.bincount(y).min() >= 0.02 * len(y)
        sel = select_k(x, range(2, 11), kmeans, random_state=0)
        found.append(sel.chosen)
        if sel.chosen == k:
            assert sel.decided_by == "separation"
    print(f"{name}: chose {found}")
    assert sum(f == k for f in found) >= 9, f"{name}: chose {found}"


def test_unequal_sizes_really_differ() -> None:
    """The generators' groups are of clearly unequal size (not a balanced design)."""
    ratios = [np.bincount(planted(6, 1200, 8, 600 + s)[1]).max()
              / np.bincount(planted(6, 1200, 8, 600 + s)[1]).min() for s in range(5)]
    assert min(ratios) > 1.5 and max(ratios) > 2.5


ARCHETYPES = {  # share, recency days, tenure days, orders, aov, sessions/week,
    # events/session, session seconds, categories, cart abandonment, support contacts
    "loyal high spenders": (0.14, (0, 6), (150, 180), 10, 270, 0.4, 6, 240, 2, 0.05, 0.3),
    "bargain hunters": (0.24, (0, 20), (100, 180), 4, 30, 0.35, 10, 600, 4, 0.4, 0.3),
    "window shoppers": (0.26, (0, 25), (80, 180), 0, 60, 0.3, 5, 1100, 3, 0.95, 0.1),
    "new explorers": (0.18, (0, 8), (8, 30), 1, 70, 0.9, 4, 220, 7, 0.3, 0.1),
    "lapsing buyers": (0.18, (70, 120), (150, 180), 5, 80, 0.5, 3, 200, 2, 0.15, 0.5),
}


def archetype_features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customer features of five planted behavioural archetypes (raw units, the default
    segment features): loyal high spenders, bargain hunters, window shoppers (no orders),
    new explorers (one order, many categories, short tenure) and lapsing buyers (nothing
    for 70-120 days). Counts are Poisson, money log-normal, times and rates noisy."""
    rng = np.random.default_rng(seed)
    names = list(ARCHETYPES)
    share = np.array([ARCHETYPES[a][0] for a in names])
    g = rng.choice(len(names), n, p=share / share.sum())

    def col(i: int) -> np.ndarray:
        return np.array([ARCHETYPES[names[j]][i] for j in g], dtype=float)

    rec = np.array([ARCHETYPES[names[j]][1] for j in g], dtype=float)
    ten = np.array([ARCHETYPES[names[j]][2] for j in g], dtype=float)
    tenure = rng.uniform(ten[:, 0], ten[:, 1])
    mean_orders = col(3)
    orders = np.where(mean_orders == 1, 1, rng.poisson(mean_orders)).astype(float)
    aov = np.where(orders > 0, rng.lognormal(np.log(col(4)), 0.35), np.nan)
    abandon = col(9)
    df = pd.DataFrame({
        "customer_key": [f"c{i:06d}" for i in range(n)],
        "recency_days": np.minimum(rng.uniform(rec[:, 0], rec[:, 1]), tenure),
        "tenure_days": tenure,
        "frequency": orders,
        "monetary": np.where(orders > 0, orders * aov, 0.0),
        "aov": aov,
        "sessions_per_week": rng.lognormal(np.log(col(5)), 0.3),
        "events_per_session": rng.lognormal(np.log(col(6)), 0.25),
        "avg_session_duration_s": rng.lognormal(np.log(col(7)), 0.35),
        "distinct_categories": 1.0 + rng.poisson(col(8) - 1),
        "cart_abandonment_rate": rng.beta(8 * abandon, 8 * (1 - abandon)),
        "support_contacts": rng.poisson(col(10)).astype(float),
    })
    return df, g


@pytest.fixture(scope="module")
def archetypes(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ws = init_workspace(tmp_path_factory.mktemp("arch") / "ws")
    df, g = archetype_features(3000, 11)
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
    return ws, pd.DataFrame({"customer_key": df.customer_key, "truth": g})


def test_five_archetypes_give_five_segments(archetypes) -> None:  # type: ignore[no-untyped-def]
    ws, truth = archetypes
    with open_engine(ws) as engine:
        sel = choose_k(context(ws, engine))
        report = run_segmentation(context(ws, engine), cfg=CFG.model_copy(update={"resamples": 5}))
        t = engine.table("segment_assignments")
        got = engine.execute(t.filter(t.version == report.version))
    assert sel["chosen"] == 5 and sel["decided_by"] == "separation"
    assert report.k == 5 and report.metrics["k_selection"]["chosen"] == 5
    m = got.merge(truth, on="customer_key")
    assert adjusted_rand_score(m.truth, m.segment_id) >= 0.95
    # every k above five splits an archetype: its least separated pair is not distinct
    by_k = {s["k"]: s for s in sel["scores"]}
    assert by_k[5]["distinct"] and by_k[5]["separation"] > 3
    assert not any(by_k[k]["distinct"] for k in range(6, 11))
    assert sel["distinct"] == [2, 3, 4, 5]


def test_more_archetype_samples_give_five() -> None:
    """Other draws of the archetypes, straight through the transform and select_k."""
    feats = [c for c in archetype_features(10, 0)[0].columns if c != "customer_key"]
    for seed in range(4):
        df, _ = archetype_features(2000, 100 + seed)
        tr = fit_transform(df, feats, log1p=CFG.log1p, scaler=CFG.scaler, impute=CFG.impute)
        assert select_k(tr.apply(df), range(2, 11), kmeans).chosen == 5


def test_the_report_keeps_every_criterion_and_says_what_decided() -> None:
    x, _ = planted(4, 800, 5, 1)
    d = select_k(x, range(2, 8), kmeans).as_dict()
    assert {"chosen", "votes", "rule", "scores", "notes"} <= set(d)
    assert set(d["votes"]) == {"silhouette", "elbow", "calinski_harabasz",
                               "davies_bouldin", "gap"}
    assert d["decided_by"] == "separation" and d["chosen"] == 4
    assert d["vote_choice"] in range(2, 8) and d["min_separation"] == MIN_SEPARATION
    for s in d["scores"]:
        assert {"silhouette", "inertia", "calinski_harabasz", "davies_bouldin", "gap",
                "gap_se", "bic", "separation", "separation_se", "least_separated",
                "smallest_share", "distinct"} <= set(s)
        assert s["distinct"] == (s["k"] in d["distinct"])
        assert s["distinct"] == (s["separation"] - s["separation_se"] >= MIN_SEPARATION
                                 and s["smallest_share"] >= 0.01)
    assert d["distinct"][-1] == 4


def test_no_distinct_groups_falls_back_to_the_votes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 5))
    sel = select_k(x, range(2, 9), kmeans)
    assert sel.decided_by == "votes" and sel.chosen == sel.vote_choice
    assert sel.distinct == [] and any("continuum" in n for n in sel.notes)
    # a mixture keeps BIC as its fallback
    gmm = select_k(x[:600], range(2, 5), lambda k, s: make_segmenter("gmm", k, CFG, s),
                   with_bic=True)
    assert gmm.decided_by == "bic" and gmm.chosen == gmm.votes["bic"]


def test_a_handful_of_extreme_customers_is_not_a_segment() -> None:
    """k-means gives a few outliers a cluster of their own as k grows; they look
    separated, but a segment needs 1% of the customers (and a note points at them)."""
    x, _ = planted(4, 1000, 5, 7)
    far = np.random.default_rng(1).normal(0, 0.3, size=(6, 5))
    far[:, 0] += x[:, 0].max() + 5
    sel = select_k(np.vstack([x, far]), range(2, 9), kmeans)
    assert sel.chosen == 4 and sel.decided_by == "separation"
    five = {s.k: s for s in sel.scores}[5]
    assert five.smallest_share is not None and five.smallest_share < 0.01
    assert five.separation is not None and five.separation_se is not None
    assert five.separation - five.separation_se >= MIN_SEPARATION and not five.distinct
    assert any("6 customers" in n and "outliers" in n for n in sel.notes)


def test_the_range_limit_is_noted() -> None:
    x, _ = planted(6, 900, 5, 3)
    sel = select_k(x, range(2, 5), kmeans)
    assert sel.chosen == 4 and "wider k range" in sel.notes[0]


def test_separation_of_a_split_group_and_of_two_groups() -> None:
    rng = np.random.default_rng(0)
    for one in (rng.normal(size=(4000, 3)), rng.uniform(size=(4000, 3)),
                np.log(rng.lognormal(0, 1, size=(4000, 3)) + 1)):
        labels = kmeans(2, 0).fit(one).labels_
        sep = separation(one, labels, rng)
        assert sep.separation < 1.8  # a unimodal group cut in two: at most sqrt(3)
    two = np.vstack([rng.normal(0, 1, (500, 3)), rng.normal((6, 0, 0), 1, (100, 3))])
    labels = np.repeat([0, 1], [500, 100])
    sep = separation(two, labels, rng)
    assert sep.separation == pytest.approx(3.0, abs=0.25) and 0 < sep.se < 0.2
    assert sep.pair == (0, 1) and sep.smallest_share == pytest.approx(100 / 600)


def test_counts_are_spread_over_their_cells() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.poisson(0.3, 2000), rng.normal(size=2000),
                         rng.integers(0, 3, 2000) * 0.5])
    out = dequantize(x, rng)
    assert np.array_equal(out[:, 1], x[:, 1])  # continuous: unchanged
    for j, step in ((0, 1.0), (2, 0.5)):
        assert np.all(np.abs(out[:, j] - x[:, j]) <= step / 2 + 1e-12)
        # the order of the levels is kept and the gaps between them are filled
        assert np.all(np.diff([out[x[:, j] == v, j].mean() for v in np.unique(x[:, j])]) > 0)
        assert np.max(np.diff(np.sort(out[:, j]))) < step / 4
    # a 0/1 count cut at its lattice gap is not two separated groups once spread
    zero_one = (rng.random((3000, 1)) < 0.3).astype(float)
    labels = zero_one[:, 0].astype(int)
    assert separation(dequantize(zero_one, rng), labels, rng).separation < MIN_SEPARATION


def test_a_shared_floor_is_not_a_separation() -> None:
    """Customers who share one value on a feature (no spend, an imputed order value)
    are not placed by it: pairs are compared on the features where both vary."""
    rng = np.random.default_rng(0)
    buyers = rng.normal(size=(400, 3))
    # the same behaviour, but nobody bought: spend (column 0) at its floor
    lookers = rng.normal(size=(100, 3))
    lookers[:, 0] = -4.0
    x, labels = np.vstack([buyers, lookers]), np.repeat([0, 1], [400, 100])
    assert separation(x, labels, rng).separation < 0.5
    # on a feature where both vary, a real gap still counts
    lookers[:, 1] += 6
    assert separation(np.vstack([buyers, lookers]), labels, rng).separation > 2.5


def test_fit_best_keeps_the_lowest_objective() -> None:
    x, _ = planted(5, 1000, 8, 7, sep=2.5, hetero=0.4)
    best = fit_best(kmeans, 5, x, 0)
    assert best.inertia_ <= min(kmeans(5, s).fit(x).inertia_ for s in (0, 101, 202)) + 1e-9


def test_select_k_command_shows_the_separation(cli, archetypes) -> None:  # type: ignore[no-untyped-def]
    ws, _ = archetypes
    r = cli("-w", ws.path, "segment", "select-k", "--k-range", "2-7", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["chosen"] == 5 and out["decided_by"] == "separation"
    assert out["distinct"] == [2, 3, 4, 5] and out["vote_choice"] in range(2, 8)
    assert all(s["separation"] > 0 and s["separation_se"] >= 0 for s in out["scores"])
    text = cli("-w", ws.path, "segment", "select-k", "--k-range", "2-7")
    assert text.code == 0 and "decided by the largest k with distinct segments" in " ".join(
        text.out.split())


def _claimed(ks: list[int], chosen: int) -> KSelection:
    """A selection that calls every k of ``ks`` distinct and chose ``chosen``."""
    scores = [KScore(k, 0.0, 0.0, 0.0, 0.0, separation=3.0, separation_se=0.1,
                     smallest_share=0.2, distinct=True) for k in ks]
    return KSelection(scores=scores, votes={}, chosen=chosen)


def test_a_segment_that_does_not_come_back_steps_k_down() -> None:
    """Two planted groups; a selection that (wrongly) passed k = 3 and 4. k-means cuts a
    round group anywhere, so the pieces do not come back in the bootstrap resamples
    (Jaccard about 0.6), while the two groups do (1.0): k steps down to 2."""
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (400, 2)), rng.normal(12, 1, (400, 2))])
    p = Prepared(table=None, features=["a", "b"], n=len(x), transform=None,  # type: ignore[arg-type]
                 x=x, sub_idx=np.arange(len(x)), stats={})
    steps: list[str] = []
    fitted, stab, sel = fit_stable(p, "kmeans", 4, CFG, _claimed([2, 3, 4], 4), steps.append)
    assert sel is not None and stab is not None
    assert sel.chosen == 2 and sel.decided_by == "stability"
    assert set(sel.unstable) == {4, 3} and max(sel.unstable.values()) < MIN_JACCARD
    assert min(stab.jaccard.values()) > 0.99 and len(set(fitted.labels_)) == 2
    assert sum("is not stable" in n for n in sel.notes) == 2
    assert any("trying k = 3" in s for s in steps)
    d = sel.as_dict()
    assert d["min_jaccard"] == MIN_JACCARD and set(d["unstable"]) == {"3", "4"}


def test_stable_segments_or_a_vote_keep_k() -> None:
    weak = {0: 0.5, 1: 1.0, 2: 1.0}
    sizes_ = {0: 40, 1: 500, 2: 500}
    assert _claimed([2, 3], 3).step_down({0: 0.9, 1: 1.0, 2: 0.8}, sizes_) is None
    lower = _claimed([2, 3], 3).step_down(weak, sizes_)
    assert lower is not None and lower.chosen == 2
    assert any("40 customers" in n and "0.50" in n for n in lower.notes)
    # nothing smaller is distinct, or k came from the votes: nothing to step down to
    assert _claimed([3], 3).step_down(weak, sizes_) is None
    voted = replace(_claimed([2, 3], 3), decided_by="votes")
    assert voted.step_down(weak, sizes_) is None
