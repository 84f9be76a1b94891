"""Build the runtime image with docker buildx and push it to the environment's ECR repository."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

from dagops.aws import Deployment, Echo, aws_boundary
from dagops.aws.ecs import validate_image_tag
from dagops.errors import DagopsError
from dagops.paths import repo_root

DOCKERFILE = Path("images") / "Dockerfile"
LOCAL_NAME = "dagops"
# Fargate runs the services on Graviton.
PUSH_PLATFORM = "linux/arm64"


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


def build_command(tags: list[str], platform: str | None, push: bool, root: Path) -> list[str]:
    cmd = ["docker", "buildx", "build", "--file", str(root / DOCKERFILE)]
    if platform:
        cmd += ["--platform", platform]
    for tag in tags:
        cmd += ["--tag", tag]
    cmd += ["--push" if push else "--load", str(root)]
    return cmd


def build(
    tag: str | None = None, platform: str | None = None, echo: Echo = print, root: Path | None = None
) -> str:
    """Build the image into the local engine as ``dagops:<tag>`` (default tag: the git SHA)."""
    root = root or repo_root()
    tag = validate_image_tag(tag or git_tag(root))
    require_docker()
    ref = f"{LOCAL_NAME}:{tag}"
    echo(f"Building {ref}{f' for {platform}' if platform else ''}.")
    if subprocess.run(build_command([ref], platform, False, root), check=False).returncode != 0:
        raise DagopsError(f"docker buildx build failed for {ref}; see its output above.")
    return ref


@aws_boundary
def ecr_login(dep: Deployment, echo: Echo = print) -> str:
    """Log the docker client in to the environment's ECR registry (password on stdin, never on argv)."""
    registry = str(dep.require("ecr_repository_url")).split("/", 1)[0]
    token = dep.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    proc = subprocess.run(
        ["docker", "login", "--username", user, "--password-stdin", registry],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DagopsError(f"docker login to {registry} failed: {detail}.")
    echo(f"Logged in to {registry}.")
    return registry


@aws_boundary
def push(
    dep: Deployment,
    tag: str | None = None,
    platform: str = PUSH_PLATFORM,
    echo: Echo = print,
    root: Path | None = None,
) -> str:
    """Build for ``platform`` and push ``<ecr_repository_url>:<tag>`` (default tag: the git SHA)."""
    root = root or repo_root()
    tag = validate_image_tag(tag or git_tag(root))
    repository = str(dep.require("ecr_repository_url"))
    require_docker()
    ecr_login(dep, echo)
    ref = f"{repository}:{tag}"
    echo(f"Building and pushing {ref} for {platform}.")
    if subprocess.run(build_command([ref], platform, True, root), check=False).returncode != 0:
        raise DagopsError(f"docker buildx build --push failed for {ref}; see its output above.")
    return tag
