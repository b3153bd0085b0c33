"""Chunked generation keeps memory bounded by the chunk size, not the customer count."""

from __future__ import annotations

import resource
import tracemalloc
from pathlib import Path

import pyarrow as pa

from tribes.synth import SynthConfig, generate


def test_peak_memory_does_not_grow_with_customers(tmp_path: Path) -> None:
    pool = pa.default_memory_pool()
    tracemalloc.start()
    try:
        small = generate(SynthConfig(out=tmp_path / "small", customers=5000, chunk_customers=5000))
        _, peak_small = tracemalloc.get_traced_memory()
        arrow_small = pool.max_memory()
        tracemalloc.reset_peak()
        big = generate(SynthConfig(out=tmp_path / "big", customers=40000, chunk_customers=5000))
        _, peak_big = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert big["events"] > 7 * small["events"]
    # NumPy buffers (traced) and Arrow buffers (pool high-water mark) stay flat
    assert peak_big < 1.3 * peak_small
    assert pool.max_memory() < 1.2 * arrow_small + 8 * 2**20
    assert peak_big < 512 * 2**20
    max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert max_rss_kib < 2 * 2**20  # whole test process below 2 GiB
