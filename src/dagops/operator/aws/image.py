"""Build the runtime image with docker buildx and push it to the environment's ECR repository.

The build uses the engine's own builder (buildx's docker driver, named after the docker context), never
a docker-container builder: that one must pull the moby/buildkit image, and the base images, which may
be local stand-ins (.ci/base-images.sh), are only in the engine's image store.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from dagops.errors import DagopsError
from dagops.names import validate_image_tag
from dagops.operator.aws import Deployment, Echo, aws_boundary
from dagops.operator.proc import run_checked
from dagops.paths import repo_root

DOCKERFILE = Path("images") / "Dockerfile"
LOCAL_NAME = "dagops"
# Fargate runs the services on Graviton.
PUSH_PLATFORM = "linux/arm64"
# images/Dockerfile's base-image build arguments, each settable as DAGOPS_<ARG> (empty: the
# Dockerfile's public default).
BASE_IMAGE_ARGS = ("PYTHON_IMAGE", "UV_IMAGE")
# A docker image reference: [host[:port]/]path[:tag][@sha256:digest], lower-case path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)


def base_images(
    python_image: str = "", uv_image: str = "", environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Base-image build args: a given value, else ``DAGOPS_<ARG>``, else none (the Dockerfile's default)."""
    from dagops import settings  # here: pydantic stays out of `invoke --list`

    found = settings.load(settings.ImageSettings, environ=environ)
    given = {"PYTHON_IMAGE": python_image or found.python_image, "UV_IMAGE": uv_image or found.uv_image}
    args: dict[str, str] = {}
    for name in BASE_IMAGE_ARGS:
        value = given[name]
        if not value:
            continue
        if not _IMAGE_REF.fullmatch(value):
            raise DagopsError(
                f"Invalid image reference for {name}: {value!r} (expected e.g. python:3.11-slim-bookworm)."
            )
        args[name] = value
    return args


def git_tag(root: Path | None = None) -> str:
    """The short git SHA of HEAD, with ``-dirty`` when the work tree has uncommitted changes."""
    root = root or repo_root()
    sha = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if sha.returncode != 0:
        raise DagopsError(
            f"Cannot name the image after the git commit: {root} is not a git checkout with a commit."
        )
    status = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return sha.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def require_docker() -> None:
    """Raise unless a docker client with buildx and a running engine are available."""
    if not shutil.which("docker"):
        raise DagopsError("docker is not installed; install Docker (with buildx) to build the image.")
    engine = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, check=False
    )
    if engine.returncode != 0:
        raise DagopsError(
            "No Docker engine is answering (`docker version` failed); start Docker and try again."
        )
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, check=False)
    if buildx.returncode != 0:
        raise DagopsError("docker buildx is not available; install the buildx plugin to build the image.")


def engine_builder() -> str:
    """The buildx builder that is the engine itself: the docker driver, named after the current context."""
    ctx = subprocess.run(["docker", "context", "show"], capture_output=True, text=True, check=False)
    return ctx.stdout.strip() if ctx.returncode == 0 and ctx.stdout.strip() else "default"


def build_command(
    tags: list[str],
    platform: str | None,
    push: bool,
    root: Path,
    build_args: Mapping[str, str] | None = None,
    builder: str = "default",
) -> list[str]:
    cmd = ["docker", "buildx", "build", "--builder", builder, "--file", str(root / DOCKERFILE)]
    if platform:
        cmd += ["--platform", platform]
    for name, value in (build_args or {}).items():
        cmd += ["--build-arg", f"{name}={value}"]
    for tag in tags:
        cmd += ["--tag", tag]
    cmd += ["--push" if push else "--load", str(root)]
    return cmd


def build(
    tag: str | None = None,
    platform: str | None = None,
    echo: Echo = print,
    root: Path | None = None,
    build_args: Mapping[str, str] | None = None,
) -> str:
    """Build the image into the local engine as ``dagops:<tag>`` (default tag: the git SHA).

    ``build_args`` names the base images (see :func:`base_images`); none means the public defaults.
    """
    root = root or repo_root()
    tag = validate_image_tag(tag or git_tag(root))
    build_args = base_images() if build_args is None else dict(build_args)
    require_docker()
    ref = f"{LOCAL_NAME}:{tag}"
    bases = ", ".join(f"{k}={v}" for k, v in build_args.items())
    echo(f"Building {ref}{f' for {platform}' if platform else ''}{f' on {bases}' if bases else ''}.")
    cmd = build_command([ref], platform, False, root, build_args, engine_builder())
    if subprocess.run(cmd, check=False).returncode != 0:
        raise DagopsError(f"docker buildx build failed for {ref}; see its output above.")
    return ref


@aws_boundary
def ecr_login(dep: Deployment, echo: Echo = print) -> str:
    """Log the docker client in to the environment's ECR registry (password on stdin, never on argv)."""
    registry = str(dep.require("ecr_repository_url")).split("/", 1)[0]
    token = dep.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    run_checked(
        ["docker", "login", "--username", user, "--password-stdin", registry],
        f"docker login to {registry} failed",
        input=password,
    )
    echo(f"Logged in to {registry}.")
    return registry


@aws_boundary
def push(
    dep: Deployment,
    tag: str | None = None,
    platform: str = PUSH_PLATFORM,
    echo: Echo = print,
    root: Path | None = None,
    build_args: Mapping[str, str] | None = None,
) -> str:
    """Build for ``platform`` and push ``<ecr_repository_url>:<tag>`` (default tag: the git SHA)."""
    root = root or repo_root()
    tag = validate_image_tag(tag or git_tag(root))
    build_args = base_images() if build_args is None else dict(build_args)
    repository = str(dep.require("ecr_repository_url"))
    require_docker()
    ecr_login(dep, echo)
    ref = f"{repository}:{tag}"
    echo(f"Building and pushing {ref} for {platform}.")
    cmd = build_command([ref], platform, True, root, build_args, engine_builder())
    if subprocess.run(cmd, check=False).returncode != 0:
        raise DagopsError(f"docker buildx build --push failed for {ref}; see its output above.")
    return tag
