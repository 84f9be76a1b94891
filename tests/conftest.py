"""Shared by every test directory: the ``docker_engine`` fixture (see docker_engine.py for the rule)."""

from __future__ import annotations

import pytest
from docker_engine import need_docker_engine


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip without a Docker engine, or fail when DAGOPS_REQUIRE_DOCKER=1 says this run needs one."""
    need_docker_engine()
