"""Tasks: dev — the local stack (`invoke dev`), its logs and state, new pipelines, and the test run."""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Any

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from dagops.errors import DagopsError
from dagops.localstack import compose, logs, scaffold, stack
from dagops.localstack.config import DevConfig
from dagops.tasks import user_errors


def _say(line: str) -> None:
    print(line, flush=True)


def _config(c: Context, **overrides: Any) -> DevConfig:
    """invoke.yaml's ``dev:`` mapping, then DAGOPS_DEV_* variables, then the task's flags."""
    mapping = c.config.get("dev") or {}
    return DevConfig.resolve(dict(mapping), **overrides)


@task(
    help={
        "detach": "start in the background and return once the UI answers (`invoke stop` stops it)",
        "mode": "auto (compose when Docker and its compose plugin answer, else embedded), embedded, compose",
    }
)
@user_errors
def up(c: Context, detach: bool = False, mode: str | None = None) -> None:
    """Start the local Dagster stack (Postgres, S3, sync agents, code servers, webserver, daemon)."""
    config = _config(c, mode=mode)
    if compose.resolve_mode(config.mode, config.root, say=_say) == "compose":
        env = compose.stack_env(config)
        code = compose.run("up", *(["--detach", "--wait"] if detach else []), root=config.root, env=env)
        if code:
            raise Exit(f"error: docker compose up failed (exit code {code}).", code=code)
        if detach:
            print(f"the compose stack runs: {config.ui_url} (`invoke stop` stops it)")
        return
    if detach:
        stack.start_detached(config)
    else:
        stack.up(config)


@task()
@user_errors
def stop(c: Context) -> None:
    """Stop the local stack started by `invoke dev` (from any terminal)."""
    config = _config(c)
    running = stack.running_pid(config) is not None
    if not running and config.mode != "embedded" and compose.compose_unavailable(config.root) is None:
        compose.run("down", root=config.root, env=compose.stack_env(config))
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
    count = logs.parse_lines(lines)
    config = _config(c)
    if stack.running_pid(config) is None and compose.resolve_mode(config.mode, config.root) == "compose":
        env = compose.stack_env(config)
        if component and component not in (known := compose.services(config.root, env)):
            raise DagopsError(
                f"No log for component {component!r}: the compose stack's services are {', '.join(known)}."
            )
        compose.run(
            "logs",
            "--tail",
            str(count),
            *(["--follow"] if follow else []),
            *([component] if component else []),
            root=config.root,
            env=env,
        )
        return
    logs.show(config.logs_dir, component=component, lines=count, follow=follow)


@task(help={"detach": "start again in the background", "mode": "auto, embedded or compose"})
@user_errors
def reset(c: Context, detach: bool = False, mode: str | None = None) -> None:
    """Stop the stack, wipe its database, synced code and DAGSTER_HOME, and start it again."""
    config = _config(c, mode=mode)
    if compose.resolve_mode(config.mode, config.root) == "compose":
        compose.run("down", "--volumes", root=config.root, env=compose.stack_env(config))
    else:
        for path in stack.reset(config):
            print(f"removed {path}")
    up(c, detach=detach, mode=mode)


@task()
@user_errors
def status(c: Context) -> None:
    """Show whether the local stack runs, its components, and each location's sync status."""
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
