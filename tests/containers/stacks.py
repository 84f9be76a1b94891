"""Helpers of the compose and cloud-shape tests: the engine condition, the images, names.

Whether these tests run is explicit, never what the machine happens to have: with
``DAGOPS_REQUIRE_DOCKER=1`` (.ci/run sets it) a missing engine, compose plugin or image fails the test;
otherwise the test is skipped with one reason. Images come from the environment, public images by
default: ``DAGOPS_IMAGE`` (the project image; else the session's ``native_image`` built by the image
tests' harness), ``DAGOPS_POSTGRES_IMAGE``, ``DAGOPS_MOTO_IMAGE`` (.ci/base-images.sh --print sets the
local stand-ins). ``DAGOPS_TEST_PREFIX`` prefixes every container, network and compose project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

# Every container, network, volume and compose project a test creates starts with this prefix.
PREFIX = os.environ.get("DAGOPS_TEST_PREFIX", "dagops-test")
POSTGRES_IMAGE = os.environ.get("DAGOPS_POSTGRES_IMAGE") or "postgres:16.4-bookworm"
MOTO_IMAGE = os.environ.get("DAGOPS_MOTO_IMAGE") or "motoserver/moto:5.2.5"


def docker_required() -> bool:
    return os.environ.get("DAGOPS_REQUIRE_DOCKER", "").strip().lower() in ("1", "true", "yes")


def project_image(request: pytest.FixtureRequest) -> str:
    """``DAGOPS_IMAGE`` when set, else the image the image tests build once per session (native_image)."""
    image = os.environ.get("DAGOPS_IMAGE", "").strip()
    if image:
        return image
    try:
        return str(request.getfixturevalue("native_image"))
    except pytest.FixtureLookupError:
        require_engine("DAGOPS_IMAGE (the project image) is unset and no native_image fixture builds it")
        raise


def _answers(*argv: str) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_engine(*images: str, compose: bool = False) -> None:
    """Skip (or fail, when Docker is required) unless the engine, the plugin and ``images`` are there."""
    reason = ""
    unknown = [i for i in images if " " in i]  # a reason given instead of an image
    if unknown:
        reason = unknown[0]
    elif not shutil.which("docker") or not _answers("docker", "info"):
        reason = "no Docker engine answers (`docker info`)"
    elif compose and not _answers("docker", "compose", "version"):
        reason = "the docker compose v2 plugin is missing"
    else:
        missing = [image for image in images if not _answers("docker", "image", "inspect", image)]
        if missing:
            reason = f"images not built: {', '.join(missing)} (`invoke image.build`, .ci/base-images.sh)"
    if reason:
        if docker_required():
            pytest.fail(f"{reason}, and DAGOPS_REQUIRE_DOCKER=1 says this run needs it.", pytrace=False)
        pytest.skip(f"{reason}; set DAGOPS_REQUIRE_DOCKER=1 to make that a failure.")


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
