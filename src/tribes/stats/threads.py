"""One thread for the native thread pools (OpenMP, BLAS) while a block runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()
_LOCAL = threading.local()


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the native thread pools (OpenMP, BLAS) with one thread inside the block.

    The models and analyses here fit many small problems (hundreds to a few hundred
    thousand rows); the pools' threads cost more than they give there, and on a busy
    machine they fight over the cores: on a 2-core machine under load, k-means was 15x,
    a Gaussian mixture 4x and t-SNE 3x slower with the default pools.

    Blocks nest (the outermost sets the limit and restores the pools). Blocks of other
    threads wait: the BLAS limit is the process's, and concurrent callers would restore
    each other's limits out of order. Only the pools of libraries loaded when the
    outermost block begins are limited: import the modules that will compute first.
    """
    from threadpoolctl import threadpool_limits

    with _LOCK:
        depth = getattr(_LOCAL, "depth", 0)
        limiter = threadpool_limits(limits=1) if depth == 0 else None
        _LOCAL.depth = depth + 1
        try:
            yield
        finally:
            _LOCAL.depth = depth
            if limiter is not None:
                limiter.restore_original_limits()
