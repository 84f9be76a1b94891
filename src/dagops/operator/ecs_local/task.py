"""One ECS task on the local Docker engine: its pause container (the awsvpc network namespace), its
containers started in dependsOn order, its essential-container checks; and a service's task read back."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagops.errors import DagopsError
from dagops.operator.ecs_local.definition import ContainerSpec, container_specs, start_order
from dagops.operator.ecs_local.secrets import resolve_secret

DEPENDENCY_TIMEOUT = 300.0


def docker(*args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and proc.returncode != 0:
        raise DagopsError(f"docker {args[0]} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


def run_argv(
    spec: ContainerSpec, container: str, network_of: str, image: str, env_names: Sequence[str]
) -> list[str]:
    """The ``docker run`` arguments of one container (values of ``env_names`` come from the environment)."""
    argv = ["run", "--detach", "--name", container, "--network", f"container:{network_of}"]
    if spec.init:
        argv.append("--init")
    if spec.stop_timeout is not None:
        argv.append(f"--stop-timeout={spec.stop_timeout}")
    if spec.user:
        argv += ["--user", spec.user]
    if spec.working_directory:
        argv += ["--workdir", spec.working_directory]
    for name in env_names:
        argv += ["--env", name]
    if spec.health_check:
        argv += spec.health_check.docker_args()
    command = list(spec.command or [])
    if spec.entry_point:
        # Docker's --entrypoint takes one word; the rest of ECS's entryPoint leads the command.
        argv += ["--entrypoint", spec.entry_point[0]]
        command = [*spec.entry_point[1:], *command]
    return [*argv, image, *command]


@dataclass
class LocalTask:
    """One running task: its pause container and its containers (Docker names ``<name>-<container>``)."""

    name: str
    specs: list[ContainerSpec]
    published: dict[int, int] = field(default_factory=dict)  # container port -> 127.0.0.1 port
    started: list[str] = field(default_factory=list)

    @property
    def pause(self) -> str:
        return f"{self.name}-pause"

    def container(self, name: str) -> str:
        return f"{self.name}-{name}"

    def state(self, name: str) -> dict[str, Any]:
        out = docker("inspect", "--format", "{{json .State}}", self.container(name), check=False)
        return dict(json.loads(out)) if out.startswith("{") else {}

    def check(self) -> None:
        """Raise DagopsError when an essential container stopped or is unhealthy (ECS stops the task)."""
        for spec in self.specs:
            if not spec.essential or self.container(spec.name) not in self.started:
                continue
            state = self.state(spec.name)
            if state.get("Status") in ("exited", "dead"):
                raise DagopsError(
                    f"Essential container {spec.name!r} of task {self.name} exited "
                    f"({state.get('ExitCode')}); ECS stops the task.\n{self.logs(spec.name)}"
                )
            if (state.get("Health") or {}).get("Status") == "unhealthy":
                raise DagopsError(
                    f"Essential container {spec.name!r} of task {self.name} is unhealthy; ECS stops the "
                    f"task.\n{self.health_log(spec.name)}\n{self.logs(spec.name)}"
                )

    def health(self, name: str) -> str | None:
        """Docker's health status of a container (starting, healthy, unhealthy), None without a check."""
        return (self.state(name).get("Health") or {}).get("Status")

    def health_log(self, name: str) -> str:
        probes = (self.state(name).get("Health") or {}).get("Log") or []
        return "\n".join(
            f"health check exit {p.get('ExitCode')}: {p.get('Output', '').strip()}" for p in probes
        )

    def wait_stopped(self, timeout: float) -> int:
        """Wait until an essential container exits (the task stops); its exit code (0: the task succeeded)."""
        deadline = time.monotonic() + timeout
        while True:
            for spec in self.specs:
                state = self.state(spec.name)
                if spec.essential and state.get("Status") in ("exited", "dead"):
                    return int(state.get("ExitCode", -1))
            if time.monotonic() > deadline:
                raise DagopsError(f"Task {self.name} did not stop within {timeout:.0f} s.")
            time.sleep(0.5)

    def logs(self, name: str, tail: int = 40) -> str:
        proc = subprocess.run(
            ["docker", "logs", "--tail", str(tail), self.container(name)],
            capture_output=True,
            text=True,
            check=False,
        )
        return (proc.stdout + proc.stderr).strip()

    def stop(self) -> None:
        """Stop the containers (``docker stop`` honours stopTimeout), then remove them and the pause."""
        for container in reversed(self.started):
            docker("stop", container, check=False)
        names = [*reversed(self.started), self.pause]
        docker("rm", "--force", "--volumes", *names, check=False)
        self.started.clear()


def _reached(task: LocalTask, dep: str, condition: str) -> bool:
    state = task.state(dep)
    status = state.get("Status")
    if status in ("exited", "dead") and condition == "HEALTHY":
        raise DagopsError(
            f"Container {dep!r} of task {task.name} exited before it was healthy.\n{task.logs(dep)}"
        )
    if condition == "START":
        return status == "running" or status in ("exited", "dead")
    if condition == "COMPLETE":
        return status in ("exited", "dead")
    if condition == "SUCCESS":
        if status in ("exited", "dead") and state.get("ExitCode") != 0:
            raise DagopsError(f"Container {dep!r} of task {task.name} exited {state.get('ExitCode')}, not 0.")
        return status == "exited"
    health = (state.get("Health") or {}).get("Status")
    if health == "unhealthy":
        raise DagopsError(f"Container {dep!r} of task {task.name} is unhealthy.\n{task.logs(dep)}")
    return bool(health == "healthy")


def start_task(
    name: str,
    task_definition: Mapping[str, Any],
    *,
    network: str,
    image_override: Mapping[str, str],
    aws_env: Mapping[str, str],
    aliases: Sequence[str] = (),
    aws_client: Callable[[str], Any],
    overrides: Sequence[Mapping[str, Any]] = (),
    dependency_timeout: float = DEPENDENCY_TIMEOUT,
) -> LocalTask:
    """Start the task's containers on ``network``; the returned task is running (dependencies honoured).

    ``image_override`` maps an image the task definition names to the local image used instead (the only
    rewrite: an ECR image cannot be pulled here). ``aliases`` are the task's Cloud Map names;
    ``overrides`` RunTask's ``containerOverrides``.
    """
    specs = container_specs(task_definition, overrides)
    region = str(task_definition["taskDefinitionArn"]).split(":")[3]
    platform_env = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
    }
    resolved = {s.name: {k: resolve_secret(v, aws_client) for k, v in s.secrets.items()} for s in specs}
    images = {s.name: image_override.get(s.image, s.image) for s in specs}
    task = LocalTask(name=name, specs=specs)
    pause = ["run", "--detach", "--init", "--name", task.pause, "--network", network]
    for alias in aliases:
        pause += ["--network-alias", alias]
    for spec in specs:
        for port in spec.ports:
            pause += ["--publish", f"127.0.0.1::{port}"]
    docker(*pause, "--entrypoint", "sleep", images[specs[0].name], "infinity")
    try:
        for port in (p for s in specs for p in s.ports):
            host = docker("port", task.pause, f"{port}/tcp").splitlines()[0]
            task.published[port] = int(host.rsplit(":", 1)[1])
        for spec in start_order(specs):
            deadline = time.monotonic() + dependency_timeout
            for dep, condition in spec.depends_on:
                while not _reached(task, dep, condition):
                    if time.monotonic() > deadline:
                        raise DagopsError(
                            f"Container {spec.name!r} of task {name}: {dep!r} did not reach {condition} "
                            f"within {dependency_timeout:.0f} s.\n{task.logs(dep)}"
                        )
                    time.sleep(0.5)
            env = {**platform_env, **aws_env, **spec.environment, **resolved[spec.name]}
            container = task.container(spec.name)
            docker(*run_argv(spec, container, task.pause, images[spec.name], sorted(env)), env=env)
            task.started.append(container)
    except BaseException:
        task.stop()
        raise
    return task
