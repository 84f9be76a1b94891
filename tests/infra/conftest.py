"""Fixtures of the OpenTofu tests (helpers in tfharness.py)."""

from __future__ import annotations

import pytest
from tfharness import Tofu, find_binary, make_tofu


@pytest.fixture(scope="session")
def tofu(tmp_path_factory: pytest.TempPathFactory) -> Tofu:
    binary = find_binary()
    if binary is None:
        pytest.skip("neither tofu nor terraform is on PATH")
    return make_tofu(binary, tmp_path_factory.mktemp("tfhome"))
