"""What each Dagster process of the embedded stack runs: its command line, its environment and its
place in the supervisor's stop order (``tier``: higher tiers stop first)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dagops.errors import DagopsError
from dagops.operator.devstack import s3 as local_s3
from dagops.operator.devstack.config import DevConfig
from dagops.operator.devstack.postgres import PostgresDatabase
from dagops.operator.devstack.supervisor import Child

# Environment a developer's shell may carry that must not reach the local stack (real AWS accounts).
_SCRUBBED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")

Servers = list[tuple[str, str, int]]


def console_script(name: str) -> str:
    """A console script of this interpreter's environment (the venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DagopsError(f"{name} was not found; install the project's dependencies (uv sync).")
    return found


def dagster_env(config: DevConfig, servers: Servers, postgres: PostgresDatabase | None) -> dict[str, str]:
    """Environment of every Dagster process: the README's container settings, for the local stack."""
    # No AWS setting of the developer's shell (keys, tokens, profiles): the stack has its own.
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("AWS_")}
    env.update(local_s3.LOCAL_CREDENTIALS)
    env.update(
        {
            "DAGSTER_HOME": str(config.dagster_home),
            "DAGSTER_S3_BUCKET": config.bucket,
            "AWS_ENDPOINT_URL": config.s3_endpoint,
            "DAGOPS_ENV": "local",
            "DAGOPS_CODE_DIR": str(config.code_dir),
            "DAGOPS_SYNC_INTERVAL": str(config.sync_interval),
            "DAGOPS_SYNC_STANDBY": "true",  # a change loads without importing dagster again
            "DAGOPS_WEBSERVER_URL": config.ui_url,
            "DAGOPS_CODE_LOCATIONS": ",".join(f"{n}={h}:{p}" for n, h, p in servers),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if postgres is not None:
        env.update(
            {
                "DAGSTER_PG_HOST": postgres.host,
                "DAGSTER_PG_PORT": str(postgres.port),
                "DAGSTER_PG_DB": postgres.db,
                "DAGSTER_PG_USERNAME": postgres.user,
                "DAGSTER_PG_PASSWORD": postgres.password,
            }
        )
    return env


def sync_agent(config: DevConfig, name: str, host: str, port: int, env: dict[str, str]) -> Child:
    """The sync agent of location ``name`` (it starts the location's code server on ``host:port``)."""
    argv = [
        sys.executable,
        "-m",
        "dagops.runtime.sync",
        "run",
        "--location",
        name,
        "--code-dir",
        str(config.code_dir),
        "--interval",
        str(config.sync_interval),
        "--grpc-host",
        host,
        "--grpc-port",
        str(port),
        "--webserver-url",
        config.ui_url,
    ]
    return Child(f"sync-{name}", argv, env={**env, "DAGOPS_LOCATION": name}, tier=2)


def webserver(config: DevConfig, env: dict[str, str]) -> Child:
    workspace_yaml = str(config.dagster_home / "workspace.yaml")
    return Child(
        "webserver",
        [
            console_script("dagster-webserver"),
            "-h",
            config.host,
            "-p",
            str(config.ui_port),
            "-w",
            workspace_yaml,
        ],
        env=env,
        cwd=config.dagster_home,
        tier=3,
    )


def daemon(config: DevConfig, env: dict[str, str]) -> Child:
    workspace_yaml = str(config.dagster_home / "workspace.yaml")
    return Child(
        "daemon",
        [console_script("dagster-daemon"), "run", "-w", workspace_yaml],
        env=env,
        cwd=config.dagster_home,
        tier=3,
    )
