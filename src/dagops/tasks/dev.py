"""Tasks: dev — the local stack (`invoke dev`), its logs and state, new pipelines, and the test run."""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from dagops.tasks import user_errors

if TYPE_CHECKING:
    from dagops.localstack.config import DevConfig

# Modules of the local stack are imported inside each task: `invoke --list` loads this file, and the
# stack's modules reach boto3 and (through dagster_home's callers) heavier libraries.


def _config(c: Context, **overrides: Any) -> DevConfig:
    """invoke.yaml's ``dev:`` mapping, then DAGOPS_DEV_* variables, then the task's flags."""
    from dagops.localstack.config import DevConfig

    mapping = c.config.get("dev") or {}
    return DevConfig.resolve(dict(mapping), **overrides)


@task(
    help={
        "detach": "start in the background and return once the UI answers (`invoke stop` stops it)",
        "mode": "auto (compose when a Docker engine answers, else embedded), embedded or compose",
    }
)
@user_errors
def up(c: Context, detach: bool = False, mode: str | None = None) -> None:
    """Start the local Dagster stack (Postgres, S3, sync agents, code servers, webserver, daemon)."""
    from dagops.localstack import compose, stack

    config = _config(c, mode=mode)
    if compose.resolve_mode(config.mode) == "compose":
        code = compose.run("up", *(["--detach", "--wait"] if detach else []), root=config.root)
        if code:
            raise Exit(f"error: docker compose up failed (exit code {code}).", code=code)
        return
    if detach:
        stack.start_detached(config)
    else:
        stack.up(config)


@task()
@user_errors
def stop(c: Context) -> None:
    """Stop the local stack started by `invoke dev` (from any terminal)."""
    from dagops.localstack import compose, stack

    config = _config(c)
    if stack.running_pid(config) is None and config.mode != "embedded" and compose.docker_available():
        compose.run("down", root=config.root)
        return
    if not stack.stop(config):
        print("the local stack is not running")


@task(
    help={
        "component": "one component: postgres, s3, sync-<location>, webserver, daemon, supervisor",
        "follow": "keep printing new lines (Ctrl-C to quit)",
        "lines": "how many lines of each log to show first (default 100)",
    }
)
@user_errors
def logs_(c: Context, component: str | None = None, follow: bool = False, lines: str = "100") -> None:
    """Show the local stack's logs, prefixed by component."""
    from dagops.localstack import compose, logs, stack

    count = logs.parse_lines(lines)
    config = _config(c)
    if stack.running_pid(config) is None and compose.resolve_mode(config.mode) == "compose":
        compose.run(
            "logs",
            "--tail",
            str(count),
            *(["--follow"] if follow else []),
            *([component] if component else []),
            root=config.root,
        )
        return
    logs.show(config.logs_dir, component=component, lines=count, follow=follow)


@task(help={"detach": "start again in the background", "mode": "auto, embedded or compose"})
@user_errors
def reset(c: Context, detach: bool = False, mode: str | None = None) -> None:
    """Stop the stack, wipe its database, synced code and DAGSTER_HOME, and start it again."""
    from dagops.localstack import compose, stack

    config = _config(c, mode=mode)
    if compose.resolve_mode(config.mode) == "compose":
        compose.run("down", "--volumes", root=config.root)
    else:
        for path in stack.reset(config):
            print(f"removed {path}")
    up(c, detach=detach, mode=mode)


@task()
@user_errors
def status(c: Context) -> None:
    """Show whether the local stack runs, its components, and each location's sync status."""
    from dagops.localstack import stack

    for line in stack.status(_config(c)):
        print(line)


@task(
    help={
        "name": "module name of the new pipeline (lowercase letters, digits, '_')",
        "location": "code location to add it to (default main)",
    }
)
@user_errors
def create(c: Context, name: str, location: str = "main") -> None:
    """Create a new pipeline (DAG) from the template, with a test, in a code location."""
    from dagops.localstack import scaffold

    created = scaffold.create_pipeline(name, location)
    print(f"created {created.module}")
    print(f"created {created.test}")
    print(f"location {location} loads: {created.check}")


@task()
def test(c: Context) -> None:
    """Run the checks with nox (arguments after `--` go to nox, e.g. `invoke test -- -s unit`)."""
    argv = [sys.executable, "-m", "nox", *shlex.split(c.remainder or "")]
    try:
        code = subprocess.run(argv, check=False).returncode
    except KeyboardInterrupt:
        code = 130
    if code:
        raise Exit(code=code)


ns = Collection("dev")
ns.add_task(up, default=True)
ns.add_task(stop)
ns.add_task(logs_, name="logs")
ns.add_task(reset)
ns.add_task(status)
ns.add_task(create)
ns.add_task(test)
ALIASES = {
    "stop": stop,
    "dev-logs": logs_,
    "dev-reset": reset,
    "create": create,
    "test": test,
}
