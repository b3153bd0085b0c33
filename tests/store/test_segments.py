"""Segment versions in the store: agreement of two versions and stable segment ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from tribes.store.segments import ari_from_table, match_segment_ids


def test_ari_from_contingency_equals_sklearn() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 4, 500), rng.integers(0, 3, 500)
    b[:250] = a[:250] % 3
    table = pd.crosstab(a, b)
    assert ari_from_table(table) == pytest.approx(adjusted_rand_score(a, b))


def test_matching_keeps_ids_of_the_same_groups() -> None:
    overlap = pd.DataFrame([[0, 90, 0], [100, 0, 0], [0, 5, 3]], index=[0, 1, 2],
                           columns=[7, 8, 9])
    mapping = match_segment_ids(overlap, {0: 95, 1: 100, 2: 8}, {7: 100, 8: 95, 9: 50},
                                next_id=10)
    assert mapping[1] == 7 and mapping[0] == 8 and mapping[2] == 10
