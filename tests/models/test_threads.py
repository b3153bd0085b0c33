"""One native thread while fitting: blocks nest, and the pools come back afterwards."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from tribes.stats import single_threaded


def _threads() -> dict[str, int]:
    np.ones(2) @ np.ones(2)  # BLAS loaded
    return {f"{i['internal_api']}:{i['filepath']}": i["num_threads"] for i in threadpool_info()}


@pytest.fixture
def pools() -> dict[str, int]:
    before = _threads()
    if all(n <= 1 for n in before.values()):
        pytest.skip("the native pools have one thread already")
    return before


def test_blocks_nest_and_the_outer_one_restores_the_pools(pools: dict[str, int]) -> None:
    with single_threaded():
        assert set(_threads().values()) == {1}
        with single_threaded():  # a fit inside a fit: no deadlock
            assert set(_threads().values()) == {1}
        assert set(_threads().values()) == {1}
    assert _threads() == pools


def test_blocks_of_several_threads_take_turns(pools: dict[str, int]) -> None:
    order: list[str] = []

    def fit() -> None:
        with single_threaded():
            order.append("other thread")

    with single_threaded():
        worker = threading.Thread(target=fit)
        worker.start()
        worker.join(0.2)
        assert worker.is_alive()  # it waits for this block to end
        order.append("this thread")
    worker.join(5)
    assert order == ["this thread", "other thread"]
    assert _threads() == pools
