"""Fixtures shared by the test modules (the array factories are in ``factories.py``)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@contextmanager
def numba_threads(n: int):
    """numba's thread count set to ``n`` inside, restored after. The kernels give the same bits on any count; tiny
    rows stepped or evaluated thousands of times run faster on one (no parallel region to wake on a busy 2-core
    machine)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One numba thread for the test (see :func:`numba_threads`)."""
    with numba_threads(1):
        yield
