"""Fixtures of the OpenTofu tests (helpers in tfharness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tfharness import MotoServer, Tofu, find_binary, make_tofu, start_moto


@pytest.fixture(scope="session")
def tofu(tmp_path_factory: pytest.TempPathFactory) -> Tofu:
    binary = find_binary()
    if binary is None:
        pytest.skip("neither tofu nor terraform is on PATH")
    return make_tofu(binary, tmp_path_factory.mktemp("tfhome"))


@pytest.fixture
def moto_server() -> Iterator[MotoServer]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()
