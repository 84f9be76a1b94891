"""Compose mode of `invoke dev`: `docker compose` on compose/docker-compose.yml (owned by the image area)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dagops.errors import DagopsError
from dagops.paths import repo_root

if TYPE_CHECKING:
    from dagops.operator.devstack.config import DevConfig

COMPOSE_FILE = Path("compose") / "docker-compose.yml"


def _answers(argv: list[str]) -> bool:
    try:
        # A busy engine (image builds, many containers starting) can take seconds to answer `docker info`.
        proc = subprocess.run(argv, capture_output=True, timeout=45, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def docker_available() -> bool:
    """True when a Docker engine answers (``docker info`` succeeds), not merely when the client exists."""
    return bool(shutil.which("docker")) and _answers(["docker", "info"])


def compose_unavailable(root: Path | None = None) -> str | None:
    """Why compose mode cannot work on this machine, or None when it can.

    It can when a Docker engine answers (``docker info``), the compose v2 plugin answers (``docker compose
    version``; without it ``docker compose -f ...`` fails with docker's own "unknown shorthand flag") and
    the compose file exists.
    """
    if not shutil.which("docker"):
        return "the docker client is not installed"
    if not _answers(["docker", "info"]):
        return "no Docker engine answers (`docker info` failed)"
    if not _answers(["docker", "compose", "version"]):
        return "the Docker Compose v2 plugin is missing (`docker compose version` failed)"
    path = (root or repo_root()) / COMPOSE_FILE
    if not path.is_file():
        return f"{COMPOSE_FILE} is missing"
    return None


def resolve_mode(mode: str, root: Path | None = None, say: Callable[[str], None] | None = None) -> str:
    """``auto`` becomes ``compose`` when compose can work here, else ``embedded`` (``say`` gets why).

    ``compose`` where it cannot work raises DagopsError: one sentence naming what is missing.
    """
    if mode not in ("auto", "compose"):
        return mode
    why = compose_unavailable(root)
    if mode == "compose" and why:
        raise DagopsError(f"Compose mode cannot start: {why}; use --mode embedded.")
    if why:
        if say:
            say(f"Starting the embedded stack: {why}.")
        return "embedded"
    return "compose"


STARTED = "compose-stack"  # in the state folder while `invoke dev` has a compose stack up


def record_started(config: DevConfig, up: bool) -> None:
    """Remember (``up``) or forget that `invoke dev` started the compose stack of this checkout."""
    marker = config.state / STARTED
    if up:
        config.state.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{config.root}\n")
    else:
        marker.unlink(missing_ok=True)


def running_mode(config: DevConfig, embedded_running: bool) -> str:
    """The mode of the stack that the commands acting on a running stack (stop, dev-logs, reset) act on.

    Embedded when so set or when its supervisor runs; compose when `invoke dev` recorded that it started
    the compose stack. Only with nothing recorded is the machine probed (``docker info``, which a busy
    engine can answer slowly or not at all).
    """
    if config.mode == "embedded" or embedded_running:
        return "embedded"
    if (config.state / STARTED).is_file():
        return "compose"
    return "compose" if compose_unavailable(config.root) is None else "embedded"


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


def wake_agents(
    names: list[str], root: Path | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """Make the compose stack's sync agents of ``names`` poll now (SIGUSR1 to each ``code-location-<name>``
    service, whose main process is the agent); the names woken. A location without a service is skipped."""
    woken = []
    for name in names:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc = subprocess.run(
                compose_argv("kill", "-s", "SIGUSR1", f"code-location-{name}", root=root),
                env={**os.environ, **(env or {})},
                capture_output=True,
                check=False,
                timeout=30,
            )
            if proc.returncode == 0:
                woken.append(name)
    return woken


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
