"""An ECS task definition's containers, in the terms ``docker run`` needs, validated as ECS validates them
(dependsOn conditions, essential containers, awsvpc ports) and put in start order."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagops.errors import DagopsError

CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")
# ECS's health check defaults (seconds, except retries).
HEALTH_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}


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
