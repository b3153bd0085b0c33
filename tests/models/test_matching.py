"""Stable segment ids: a new fit's clusters take the ids of the same groups before."""

from __future__ import annotations

import pandas as pd

from tribes.models.matching import NOISE, match_segment_ids


def test_matching_keeps_ids_of_the_same_groups() -> None:
    overlap = pd.DataFrame([[0, 90, 0], [100, 0, 0], [0, 5, 3]], index=[0, 1, 2],
                           columns=[7, 8, 9])
    mapping = match_segment_ids(overlap, {0: 95, 1: 100, 2: 8}, {7: 100, 8: 95, 9: 50},
                                next_id=10)
    assert mapping[1] == 7 and mapping[0] == 8 and mapping[2] == 10


def test_new_groups_get_fresh_ids_largest_first_and_noise_stays() -> None:
    # nothing to match with: fresh ids from next_id, the largest group first, ties by key
    mapping = match_segment_ids(pd.DataFrame(), {0: 10, 1: 30, 2: 10, NOISE: 4}, {},
                                next_id=5, tie_key={0: "b", 2: "a"})
    assert mapping == {NOISE: NOISE, 1: 5, 2: 6, 0: 7}


def test_a_weak_overlap_does_not_keep_an_id() -> None:
    # Jaccard 40 / (60 + 80 - 40) = 0.4 < 0.5: a different group, a fresh id
    overlap = pd.DataFrame([[40]], index=[0], columns=[3])
    assert match_segment_ids(overlap, {0: 60}, {3: 80}, next_id=4) == {0: 4}
