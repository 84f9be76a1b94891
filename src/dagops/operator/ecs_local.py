"""Run ECS task definitions on a local Docker engine the way ECS (Fargate, ``awsvpc``) runs them.

One place holds ECS's semantics, so a reader can check them against the AWS documentation:

- **One network namespace per task** (``awsvpc``): a pause container owns the task's address; every
  container of the task joins it (``--network container:<pause>``), so they reach each other on
  ``localhost`` and share one port space. The task's ``portMappings`` are published on 127.0.0.1 from
  the pause container, the way the task's ENI exposes them.
- **Cloud Map names** are the pause container's aliases on the shared Docker network, so
  ``<service>.<namespace>`` resolves to the task as it would inside the VPC.
- ``image`` (through one explicit override: an ECR image cannot be pulled here), ``entryPoint``,
  ``command``, ``environment``, ``workingDirectory``, ``user``, ``stopTimeout`` and
  ``linuxParameters.initProcessEnabled`` (``--init``) map one to one onto ``docker run``.
- ``secrets``: each ``valueFrom`` is resolved as ECS's agent does, from Secrets Manager
  (``arn:aws:secretsmanager:...:secret:<name>[:<json-key>:<version-stage>:<version-id>]``) or
  SSM Parameter Store (a parameter ARN or name), and handed to the container as an environment variable.
  Values travel through ``docker run -e NAME`` (read from the client's environment), never on argv.
- ``healthCheck`` becomes Docker's health check with the same command, interval, timeout, retries and
  start period (ECS's defaults: 30 s, 5 s, 3, 0).
- ``dependsOn``: a container starts only once each dependency reached its condition: ``START`` (running),
  ``COMPLETE`` (exited), ``SUCCESS`` (exited 0), ``HEALTHY`` (its health check passes). As in ECS,
  ``COMPLETE``/``SUCCESS`` may not name an essential container and ``HEALTHY`` needs a health check.
- ``essential``: when an essential container stops, or its health check reports it unhealthy, the task
  stops (``LocalTask.check`` reports it; a service would then replace the task).
- ``overrides`` (RunTask's ``containerOverrides``): a container's ``command`` replaces the definition's,
  its ``environment`` entries are added to (and win over) the definition's; ``LocalTask.wait_stopped``
  waits for a one-off task to stop and reports its essential container's exit code.
- What the platform injects: ``AWS_REGION``/``AWS_DEFAULT_REGION`` (the task definition's region) and
  ``AWS_EXECUTION_ENV``; the task role's credentials and any endpoint come from ``aws_env`` (in tests: an
  emulator's endpoint and its fake keys, standing in for the task-role credential endpoint).

Not reproduced: task-level cpu/memory limits, the awslogs driver (``docker logs`` instead), the task
metadata endpoint, and the execution role's permission checks.

Uses the ``docker`` CLI only (no SDK), so it runs wherever ``docker run`` does.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagops.errors import DagopsError

CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")
# ECS's health check defaults (seconds, except retries).
HEALTH_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}
DEPENDENCY_TIMEOUT = 300.0


@dataclass(frozen=True)
class HealthCheck:
    command: list[str]
    interval: int
    timeout: int
    retries: int
    start_period: int

    def docker_args(self) -> list[str]:
        kind, *rest = self.command
        if kind == "CMD-SHELL":
            cmd = " ".join(rest)
        elif kind == "CMD":
            cmd = shlex.join(rest)  # Docker's CLI takes one string and runs it with /bin/sh -c
        else:
            raise DagopsError(f"healthCheck.command must start with CMD or CMD-SHELL, not {kind!r}.")
        return [
            f"--health-cmd={cmd}",
            f"--health-interval={self.interval}s",
            f"--health-timeout={self.timeout}s",
            f"--health-retries={self.retries}",
            f"--health-start-period={self.start_period}s",
        ]


@dataclass(frozen=True)
class ContainerSpec:
    """One container definition, in the terms ``docker run`` needs."""

    name: str
    image: str
    essential: bool = True
    entry_point: list[str] | None = None
    command: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # env name -> valueFrom
    ports: list[int] = field(default_factory=list)
    depends_on: list[tuple[str, str]] = field(default_factory=list)  # (container, condition)
    health_check: HealthCheck | None = None
    stop_timeout: int | None = None
    init: bool = False
    user: str | None = None
    working_directory: str | None = None


def container_specs(
    task_definition: Mapping[str, Any], overrides: Sequence[Mapping[str, Any]] = ()
) -> list[ContainerSpec]:
    """The containers of a DescribeTaskDefinition ``taskDefinition``, validated as ECS validates them.

    ``overrides`` are RunTask's ``containerOverrides`` (``name``, ``command``, ``environment``).
    """
    specs: list[ContainerSpec] = []
    by_name = {o["name"]: o for o in overrides}
    unknown = set(by_name) - {c["name"] for c in task_definition.get("containerDefinitions", [])}
    if unknown:
        raise DagopsError(f"containerOverrides name containers not in the task: {sorted(unknown)}.")
    for c in task_definition.get("containerDefinitions", []):
        override = by_name.get(c["name"], {})
        health = None
        if c.get("healthCheck"):
            h = {**HEALTH_DEFAULTS, **c["healthCheck"]}
            health = HealthCheck(
                command=list(h["command"]),
                interval=int(h["interval"]),
                timeout=int(h["timeout"]),
                retries=int(h["retries"]),
                start_period=int(h["startPeriod"]),
            )
        specs.append(
            ContainerSpec(
                name=c["name"],
                image=c["image"],
                essential=c.get("essential", True),
                entry_point=list(c["entryPoint"]) if c.get("entryPoint") else None,
                command=list(override.get("command") or c.get("command") or []) or None,
                environment={
                    e["name"]: e["value"]
                    for e in [*c.get("environment", []), *override.get("environment", [])]
                },
                secrets={s["name"]: s["valueFrom"] for s in c.get("secrets", [])},
                ports=[int(p["containerPort"]) for p in c.get("portMappings", [])],
                depends_on=[(d["containerName"], d["condition"]) for d in c.get("dependsOn", [])],
                health_check=health,
                stop_timeout=c.get("stopTimeout"),
                init=bool((c.get("linuxParameters") or {}).get("initProcessEnabled")),
                user=c.get("user"),
                working_directory=c.get("workingDirectory"),
            )
        )
    _validate(specs)
    return specs


def _validate(specs: Sequence[ContainerSpec]) -> None:
    by_name = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise DagopsError("The task definition names a container twice.")
    if not any(s.essential for s in specs):
        raise DagopsError("A task definition needs at least one essential container.")
    ports = [p for s in specs for p in s.ports]
    if len(set(ports)) != len(ports):
        raise DagopsError(f"Two containers of one awsvpc task map the same port: {sorted(ports)}.")
    for s in specs:
        for dep, condition in s.depends_on:
            target = by_name.get(dep)
            if target is None:
                raise DagopsError(f"Container {s.name!r} depends on {dep!r}, which is not in the task.")
            if condition not in CONDITIONS:
                raise DagopsError(f"Container {s.name!r}: unknown dependsOn condition {condition!r}.")
            if condition in ("COMPLETE", "SUCCESS") and target.essential:
                raise DagopsError(
                    f"Container {s.name!r} waits for {dep!r} to {condition.lower()}, "
                    "but an essential container may not exit."
                )
            if condition == "HEALTHY" and target.health_check is None:
                raise DagopsError(
                    f"Container {s.name!r} waits for {dep!r} to be HEALTHY; it has no health check."
                )
    start_order(specs)  # raises on a cycle


def start_order(specs: Sequence[ContainerSpec]) -> list[ContainerSpec]:
    """The containers in an order that starts every dependency first (definition order otherwise)."""
    by_name = {s.name: s for s in specs}
    done: list[ContainerSpec] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(spec: ContainerSpec) -> None:
        if spec.name in seen:
            return
        if spec.name in visiting:
            raise DagopsError(f"The dependsOn of container {spec.name!r} form a cycle.")
        visiting.add(spec.name)
        for dep, _ in spec.depends_on:
            visit(by_name[dep])
        visiting.discard(spec.name)
        seen.add(spec.name)
        done.append(spec)

    for spec in specs:
        visit(spec)
    return done


# ---- secrets ----------------------------------------------------------------------------------------------


def parse_secret_reference(value_from: str) -> tuple[str, str, str, str]:
    """``valueFrom`` of a Secrets Manager secret -> (secret ARN, json key, version stage, version id).

    ECS's form is ``arn:aws:secretsmanager:<region>:<account>:secret:<name>:<json-key>:<stage>:<id>``,
    the last three optional (empty between colons); the secret's own ARN is the first seven fields.
    """
    parts = value_from.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager" or parts[5] != "secret" or len(parts) > 10:
        raise DagopsError(f"{value_from!r} is not a Secrets Manager secret reference.")
    extra = [*parts[7:], "", "", ""][:3]
    return ":".join(parts[:7]), extra[0], extra[1], extra[2]


def resolve_secret(value_from: str, client: Callable[[str], Any]) -> str:
    """The value ECS would inject for ``valueFrom``; ``client(service)`` makes a boto3 client."""
    if value_from.startswith("arn:") and value_from.split(":")[2:3] == ["ssm"]:
        name = value_from.split(":parameter", 1)[1]
        return str(client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    if not value_from.startswith("arn:"):
        return str(client("ssm").get_parameter(Name=value_from, WithDecryption=True)["Parameter"]["Value"])
    arn, key, stage, version = parse_secret_reference(value_from)
    kwargs: dict[str, str] = {"SecretId": arn}
    if stage:
        kwargs["VersionStage"] = stage
    if version:
        kwargs["VersionId"] = version
    text = client("secretsmanager").get_secret_value(**kwargs)["SecretString"]
    if not key:
        return str(text)
    try:
        document = json.loads(text)
    except ValueError:
        raise DagopsError(f"Secret {arn} is not JSON, so it has no key {key!r}.") from None
    if not isinstance(document, dict) or key not in document:
        raise DagopsError(f"Secret {arn} has no JSON key {key!r}.")
    return str(document[key])


# ---- docker -----------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ServiceTask:
    """What an ECS service runs: its task definition and the Cloud Map names its tasks register."""

    service: str
    task_definition: dict[str, Any]
    aliases: list[str]


def service_tasks(client: Callable[[str], Any], cluster: str, services: Sequence[str]) -> list[ServiceTask]:
    """Read each service back (DescribeServices, DescribeTaskDefinition, Cloud Map's GetService/Namespace)."""
    ecs, discovery = client("ecs"), client("servicediscovery")
    out: list[ServiceTask] = []
    described = ecs.describe_services(cluster=cluster, services=list(services))
    if described.get("failures"):
        raise DagopsError(f"ECS does not know these services: {described['failures']}.")
    for svc in described["services"]:
        td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
        aliases = []
        for registry in svc.get("serviceRegistries", []):
            service_id = registry["registryArn"].rsplit("/", 1)[1]
            entry = discovery.get_service(Id=service_id)["Service"]
            # A service created with DnsConfig carries its namespace there (moto returns only that).
            namespace_id = entry.get("NamespaceId") or entry["DnsConfig"]["NamespaceId"]
            namespace = discovery.get_namespace(Id=namespace_id)["Namespace"]["Name"]
            aliases.append(f"{entry['Name']}.{namespace}")
        out.append(ServiceTask(service=svc["serviceName"], task_definition=td, aliases=aliases))
    return out


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
