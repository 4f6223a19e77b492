"""Fixtures shared by the test modules (the array factories are in ``factories.py``)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
