"""Compose mode of `invoke dev`: `docker compose` on compose/docker-compose.yml (owned by the image area)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dagops.errors import DagopsError
from dagops.paths import repo_root

if TYPE_CHECKING:
    from dagops.localstack.config import DevConfig

COMPOSE_FILE = Path("compose") / "docker-compose.yml"


def docker_available() -> bool:
    """True when a Docker engine answers (``docker info`` succeeds), not merely when the client exists."""
    if not shutil.which("docker"):
        return False
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def resolve_mode(mode: str) -> str:
    """``auto`` becomes ``compose`` when a Docker engine answers, else ``embedded``."""
    if mode == "auto":
        return "compose" if docker_available() else "embedded"
    if mode == "compose" and not docker_available():
        raise DagopsError(
            "Compose mode needs a running Docker engine (`docker info` failed); use --mode embedded."
        )
    return mode


def compose_argv(*args: str, root: Path | None = None) -> list[str]:
    path = (root or repo_root()) / COMPOSE_FILE
    if not path.is_file():
        raise DagopsError(f"{path} is missing; compose mode needs it (or use --mode embedded).")
    return ["docker", "compose", "-f", str(path), *args]


def stack_env(config: DevConfig) -> dict[str, str]:
    """The compose file's variables that follow `invoke dev`'s settings (its loopback ports)."""
    return {"DAGOPS_UI_PORT": str(config.ui_port), "DAGOPS_S3_PORT": str(config.s3_port)}


def run(*args: str, root: Path | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run ``docker compose -f compose/docker-compose.yml ARGS`` in the foreground; its exit code."""
    try:
        return subprocess.run(
            compose_argv(*args, root=root), env={**os.environ, **(env or {})}, check=False
        ).returncode
    except KeyboardInterrupt:
        return 130


def services(root: Path | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """The services the compose file defines (``docker compose config --services``)."""
    proc = subprocess.run(
        compose_argv("config", "--services", root=root),
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DagopsError(f"docker compose cannot read {COMPOSE_FILE}: {proc.stderr.strip()}")
    return proc.stdout.split()
