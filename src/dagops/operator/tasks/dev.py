"""Tasks: dev — the local stack (`invoke dev`), its logs and state, new pipelines, and the test run."""

from __future__ import annotations

import shlex
import subprocess
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from dagops.errors import DagopsError
from dagops.operator.tasks import user_errors

if TYPE_CHECKING:
    from dagops.operator.devstack.config import DevConfig

# Modules of the local stack are imported inside each task: `invoke --list` loads this file, and the
# stack's modules reach boto3 and (through dagster_home's callers) heavier libraries.


def _say(line: str) -> None:
    print(line, flush=True)


def _config(c: Context, **overrides: Any) -> DevConfig:
    """invoke.yaml's ``dev:`` mapping, then DAGOPS_DEV_* variables, then the task's flags."""
    from dagops.operator.devstack.config import DevConfig

    mapping = c.config.get("dev") or {}
    return DevConfig.resolve(dict(mapping), **overrides)


@task(
    help={
        "detach": "start in the background and return once the UI answers (`invoke stop` stops it)",
        "mode": "auto (compose when Docker and its compose plugin answer, else embedded), embedded, compose",
        "no_watch": "do not publish a code location when one of its files is saved (setting dev.watch)",
    }
)
@user_errors
def up(c: Context, detach: bool = False, mode: str | None = None, no_watch: bool = False) -> None:
    """Start the local Dagster stack (Postgres, S3, sync agents, code servers, webserver, daemon)."""
    from dagops.operator.devstack import compose, control

    config = _config(c, mode=mode, watch=False if no_watch else None)
    if compose.resolve_mode(config.mode, config.root, say=_say) == "compose":
        code = _compose_up(config, detach)
        if code:
            raise Exit(f"error: docker compose up failed (exit code {code}).", code=code)
        if detach:
            print(f"the compose stack runs: {config.ui_url} (`invoke stop` stops it)")
        return
    if detach:
        control.start_detached(config)
    else:
        control.up(config)


def _compose_up(config: DevConfig, detach: bool) -> int:
    """`docker compose up`; in the foreground, saved code is published as `invoke dags.deploy` does."""
    import threading
    import time

    from dagops.operator.devstack import compose

    env = compose.stack_env(config)
    compose.record_started(config, up=True)
    if detach or not config.watch:
        if detach and config.watch:
            print("note: with --detach, saved code is not published by itself: `invoke dags.deploy` does it")
        return compose.run("up", *(["--detach", "--wait"] if detach else []), root=config.root, env=env)
    from dagops.operator import code_watch
    from dagops.operator.devstack import s3 as local_s3

    def say(line: str) -> None:
        print(f"[watch] {line}", flush=True)

    # To the stack's S3 endpoint on loopback, from here, waking the location's agent (SIGUSR1 through
    # `docker compose kill`): the agents' reports then say what they serve (or the import error), and
    # only the saved location is published. The compose `publisher` service
    # publishes every location once per `up`; files saved while the stack starts are published when the
    # watch is in place (``since``).
    stop_event = threading.Event()
    watcher = code_watch.for_bucket(
        local_s3.client(config.s3_endpoint),
        config.bucket,
        root=config.root,
        run_dir=config.run_dir,
        say=say,
        wake=lambda names: compose.wake_agents(names, root=config.root, env=env),
        since=time.time(),
    )
    watcher.start(stop_event)
    try:
        return compose.run("up", root=config.root, env=env)
    finally:
        stop_event.set()


@task()
@user_errors
def stop(c: Context) -> None:
    """Stop the local stack started by `invoke dev` (from any terminal)."""
    from dagops.operator.devstack import compose, control, state

    config = _config(c)
    if compose.running_mode(config, state.running_pid(config) is not None) == "compose":
        code = compose.run("down", root=config.root, env=compose.stack_env(config))
        if code:
            raise Exit(f"error: docker compose down failed (exit code {code}).", code=code)
        compose.record_started(config, up=False)
        return
    if not control.stop(config):
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
    from dagops.operator.devstack import compose, logs, state

    count = logs.parse_lines(lines)
    config = _config(c)
    if compose.running_mode(config, state.running_pid(config) is not None) == "compose":
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
    from dagops.operator.devstack import compose, control, state

    config = _config(c, mode=mode)
    resolved = (
        compose.resolve_mode(config.mode, config.root)
        if config.mode == "compose"
        else compose.running_mode(config, state.running_pid(config) is not None)
    )
    if resolved == "compose":
        compose.run("down", "--volumes", root=config.root, env=compose.stack_env(config))
        compose.record_started(config, up=False)
    else:
        for path in control.reset(config):
            print(f"removed {path}")
    up(c, detach=detach, mode=resolved)


@task()
@user_errors
def status(c: Context) -> None:
    """Show whether the local stack runs, its components, and each location's sync status."""
    from dagops.operator.devstack import status as stack_status

    for line in stack_status.status(_config(c)):
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
    from dagops.operator.devstack import scaffold

    created = scaffold.create_pipeline(name, location)
    print(f"created {created.module}")
    print(f"created {created.test}")
    print(f"location {location} loads: {created.check}")
    print(_next_step(_config(c), location))


def _next_step(config: DevConfig, location: str) -> str:
    """What happens to a new pipeline now: seen in the running stack (waited for), or how to get there."""
    from dagops.operator.devstack.state import read_state, running_pid

    if running_pid(config) is None:
        return "next: `invoke dev` starts the local stack with it (the UI shows its assets)"
    state = read_state(config)
    if not state.get("watch"):
        return "next: `invoke dags.deploy` publishes it to the running local stack (dev.watch is off)"
    from dagops import registry
    from dagops.manifest import build
    from dagops.operator.code_watch import OUTCOME_TIMEOUT
    from dagops.operator.devstack import s3 as local_s3
    from dagops.runtime.sync import report

    loc = registry.get(location, config.root)
    revision = build(loc.name, loc.path(config.root), loc.entry)[0].revision
    client = local_s3.client(state.get("s3_endpoint") or config.s3_endpoint)
    bucket = state.get("bucket") or config.bucket
    try:
        (outcome,) = report.wait_served(client, bucket, {loc.name: revision}, timeout=OUTCOME_TIMEOUT)
    except Exception as exc:  # the local S3 went away meanwhile: say what to look at instead
        return f"the running stack publishes it; `invoke dags.status` shows how ({type(exc).__name__})"
    if outcome.state == report.SERVED:
        return f"in the running stack now ({state.get('ui_url')}): {outcome.line()}"
    return f"the running stack published it: {outcome.line()}"


@task()
@user_errors
def test(c: Context) -> None:
    """Run the default nox sessions as CI does, infra beside the containers (`-- ARGS`: nox ARGS as given)."""
    from dagops.operator import testrun

    args = shlex.split(c.remainder or "")
    try:
        code = subprocess.run([*testrun.NOX, *args], check=False).returncode if args else testrun.run()
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
