"""Whether this run needs a Docker engine, said explicitly (imported by conftest files and tests).

A test that needs an engine asks for the ``docker_engine`` fixture. Where none answers it skips with one
reason, unless ``DAGOPS_REQUIRE_DOCKER=1`` (CI sets it, see .ci/run): then it fails, so a machine whose
engine did not start cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest

from dagops.operator.devstack.compose import docker_available

REQUIRE_DOCKER = "DAGOPS_REQUIRE_DOCKER"


def docker_required() -> bool:
    return os.environ.get(REQUIRE_DOCKER, "").strip().lower() in ("1", "true", "yes")


def need_docker_engine() -> None:
    """Return when a Docker engine answers; otherwise skip, or fail when this run requires one."""
    if docker_available():
        return
    reason = "no Docker engine answers (`docker info` failed)"
    if docker_required():
        pytest.fail(f"{reason}, and {REQUIRE_DOCKER}=1 says this run needs one.", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_DOCKER}=1 to make that a failure.")
