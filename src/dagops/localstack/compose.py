"""Compose mode of `invoke dev`: `docker compose` on compose/docker-compose.yml (owned by the image area)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dagops.errors import DagopsError
from dagops.paths import repo_root

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


def run(*args: str, root: Path | None = None) -> int:
    """Run ``docker compose -f compose/docker-compose.yml ARGS`` in the foreground; its exit code."""
    try:
        return subprocess.run(compose_argv(*args, root=root), check=False).returncode
    except KeyboardInterrupt:
        return 130
