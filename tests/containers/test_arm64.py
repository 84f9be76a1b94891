"""The image for Fargate's architecture: it builds for linux/arm64 (under qemu on other hosts), imports
dagster there and runs its entrypoint, which renders its config and starts the webserver's command.

Its own nox session (`nox -s containers_arm64`): under emulation the build takes minutes. Base images:
``DAGOPS_ARM64_PYTHON_IMAGE`` / ``DAGOPS_ARM64_UV_IMAGE`` (default: the Dockerfile's public, multi-arch
images); `.ci/base-images.sh --arch arm64 --print` names the local stand-ins.
"""

from __future__ import annotations

import os
import platform

import pytest
from harness import Engine, build_image

from dagops.operator.aws import image as images

pytestmark = pytest.mark.arm64
PLATFORM = "linux/arm64"


@pytest.fixture(scope="module")
def arm64_image(engine: Engine) -> str:
    # On an arm64 host the native bases (DAGOPS_PYTHON_IMAGE, DAGOPS_UV_IMAGE) are arm64 ones.
    native = platform.machine() in ("aarch64", "arm64")

    def base(name: str) -> str:
        own = os.environ.get(f"DAGOPS_ARM64_{name}", "")
        return own or (os.environ.get(f"DAGOPS_{name}", "") if native else "")

    bases = images.base_images(base("PYTHON_IMAGE"), base("UV_IMAGE"), environ={})
    return build_image(PLATFORM, "-arm64", engine.figures, bases)


def test_the_arm64_image_is_arm64_and_imports_dagster(engine: Engine, arm64_image: str) -> None:
    attrs = engine.client.images.get(arm64_image).attrs
    assert (attrs["Os"], attrs["Architecture"]) == ("linux", "arm64")
    assert attrs["Config"]["User"] == "10001:10001"
    probe = "import dagster, platform; print(platform.machine(), dagster.__version__)"
    out = engine.client.containers.run(
        arm64_image, entrypoint=["python", "-c", probe], platform=PLATFORM, remove=True
    )
    machine, version = out.decode().split()
    assert machine == "aarch64"
    assert version[0].isdigit()


def test_the_entrypoint_runs_on_arm64(engine: Engine, arm64_image: str) -> None:
    # No role: the entrypoint's own one-line refusal.
    refused = engine.run("arm64-norole", arm64_image, command=[], platform=PLATFORM)
    assert refused.wait(timeout=120)["StatusCode"] == 1
    assert refused.logs().decode().startswith("dagops-entrypoint: No role given; usage: dagops-entrypoint")
    # A webserver with every setting: config rendered, dagster-webserver exec'd (asked for --help only).
    env = {
        "DAGSTER_S3_BUCKET": "b",
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USERNAME": "dagster",
        "DAGSTER_PG_PASSWORD": "x",
        "DAGOPS_ENV": "arm64",
        "DAGOPS_CODE_LOCATIONS": "main=code-main:4000",
    }
    started = engine.run(
        "arm64-webserver", arm64_image, command=["webserver", "--help"], env=env, platform=PLATFORM
    )
    assert started.wait(timeout=300)["StatusCode"] == 0, engine.logs(started)
    assert "Usage: dagster-webserver" in started.logs().decode()
