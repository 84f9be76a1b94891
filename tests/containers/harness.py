"""Helpers of the container tests: the engine condition, the images, names, waiting.

Whether these tests run is explicit, never what the machine happens to have: when ``CI`` or
``DAGOPS_REQUIRE_DOCKER`` is set, a missing engine, compose plugin or image fails the test; otherwise
the test is skipped with one reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# Every container, network, volume and compose project a test creates starts with this prefix.
PREFIX = os.environ.get("DAGOPS_TEST_DOCKER_PREFIX", "dagops-test")
# The images: the public ones by default, the local stand-ins where CI sets these variables.
PROJECT_IMAGE = os.environ.get("DAGOPS_IMAGE", "dagops:local")
POSTGRES_IMAGE = os.environ.get("DAGOPS_POSTGRES_IMAGE", "postgres:16.4-bookworm")
S3_IMAGE = os.environ.get("DAGOPS_S3_IMAGE", "motoserver/moto:5.1.4")


def docker_required() -> bool:
    return any(
        os.environ.get(name, "").strip() not in ("", "0", "false") for name in ("CI", "DAGOPS_REQUIRE_DOCKER")
    )


def _answers(*argv: str) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_engine(*images: str, compose: bool = False) -> None:
    """Skip (or fail, when Docker is required) unless the engine, the plugin and ``images`` are there."""
    reason = ""
    if not shutil.which("docker") or not _answers("docker", "info"):
        reason = "no Docker engine answers (`docker info`)"
    elif compose and not _answers("docker", "compose", "version"):
        reason = "the docker compose v2 plugin is missing"
    else:
        missing = [image for image in images if not _answers("docker", "image", "inspect", image)]
        if missing:
            reason = f"images not built: {', '.join(missing)} (`invoke image.build`, .ci/base-images.sh)"
    if reason:
        if docker_required():
            pytest.fail(f"Docker is required here (CI/DAGOPS_REQUIRE_DOCKER) but {reason}.")
        pytest.skip(reason)


def unique(kind: str) -> str:
    return f"{PREFIX}-{kind}-{uuid.uuid4().hex[:8]}"


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])} failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


def published_port(container: str, port: int) -> int:
    return int(docker("port", container, f"{port}/tcp").splitlines()[0].rsplit(":", 1)[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    """Call ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
