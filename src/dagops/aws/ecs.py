"""ECS releases: new task definition revisions with a new image, service updates, and waiting for them."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagops.aws import Deployment, Echo, aws_boundary
from dagops.errors import DagopsError

# docker's tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# The fields of DescribeTaskDefinition that RegisterTaskDefinition accepts back.
_REGISTER_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)


def validate_image_tag(tag: str) -> str:
    """Return ``tag`` if docker accepts it as an image tag, else raise."""
    if not isinstance(tag, str) or not IMAGE_TAG.fullmatch(tag):
        raise DagopsError(
            f"Invalid image tag {tag!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'."
        )
    return tag


def image_ref(dep: Deployment, tag: str) -> str:
    return f"{dep.require('ecr_repository_url')}:{validate_image_tag(tag)}"


@aws_boundary
def register_revision(dep: Deployment, task_definition: str, image: str) -> str:
    """Register a new revision of ``task_definition`` (family or ARN) with every image set to ``image``."""
    ecs = dep.client("ecs")
    try:
        described = ecs.describe_task_definition(taskDefinition=task_definition, include=["TAGS"])
    except ecs.exceptions.ClientException as exc:
        raise DagopsError(
            f"Task definition {task_definition!r} of environment {dep.env!r} not found: {exc}."
        ) from None
    current = described["taskDefinition"]
    request: dict[str, Any] = {
        k: current[k] for k in _REGISTER_FIELDS if current.get(k) not in (None, [], {})
    }
    request["containerDefinitions"] = [{**c, "image": image} for c in current["containerDefinitions"]]
    if described.get("tags"):
        request["tags"] = described["tags"]
    return str(ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"])


def _describe(dep: Deployment, services: list[str]) -> list[dict[str, Any]]:
    ecs = dep.client("ecs")
    found: list[dict[str, Any]] = []
    for start in range(0, len(services), 10):  # DescribeServices takes at most 10 names
        batch = services[start : start + 10]
        response = ecs.describe_services(cluster=dep.cluster, services=batch)
        missing = [f["arn"].rsplit("/", 1)[-1] for f in response.get("failures", [])]
        inactive = [s["serviceName"] for s in response["services"] if s.get("status") != "ACTIVE"]
        if missing or inactive:
            raise DagopsError(
                f"Service(s) {', '.join(missing + inactive)} not found in cluster {dep.cluster!r} "
                f"of environment {dep.env!r}; apply its tofu root first."
            )
        found.extend(response["services"])
    return found


def services(dep: Deployment) -> dict[str, str]:
    """The environment's ECS services: role key (webserver, daemon, code-<location>) -> service name."""
    return dep.mapping("service_names")


@dataclass
class ServiceState:
    name: str
    done: bool
    failed: str | None
    line: str


def assess(service: dict[str, Any], expected_task_definition: str | None) -> ServiceState:
    """Where one described service stands in its rollout: done, still going, or failed (rolled back)."""
    name = service["serviceName"]
    deployments = service.get("deployments", [])
    primary = next(
        (d for d in deployments if d.get("status") == "PRIMARY"), deployments[0] if deployments else {}
    )
    rollout = primary.get("rolloutState", "?")
    running, desired = service.get("runningCount", 0), service.get("desiredCount", 0)
    line = f"  {name}: {rollout}, {running}/{desired} running, {len(deployments)} deployment(s)"
    failed_deployment = next((d for d in deployments if d.get("rolloutState") == "FAILED"), None)
    if failed_deployment is not None:
        reason = failed_deployment.get("rolloutStateReason") or "the deployment circuit breaker tripped"
        return ServiceState(name, False, f"{name}: deployment failed and was rolled back ({reason})", line)
    if expected_task_definition and service.get("taskDefinition") != expected_task_definition:
        return ServiceState(
            name,
            False,
            f"{name}: now runs {service.get('taskDefinition')}, not the new revision (rolled back)",
            line,
        )
    done = len(deployments) == 1 and rollout == "COMPLETED" and running == desired
    return ServiceState(name, done, None, line)


@aws_boundary
def wait_stable(
    dep: Deployment,
    expected: Mapping[str, str | None],
    echo: Echo = print,
    timeout: float = 1800.0,
    poll: float = 15.0,
) -> None:
    """Poll until every service in ``expected`` (name -> task definition ARN) is stable; raise on rollback."""
    names = list(expected)
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        states = [assess(s, expected[s["serviceName"]]) for s in _describe(dep, names)]
        echo(f"[{time.monotonic() - started:5.0f}s] waiting for {len(names)} service(s) to be stable:")
        for state in states:
            echo(state.line)
        failures = [s.failed for s in states if s.failed]
        if failures:
            raise DagopsError("Deployment rolled back: " + "; ".join(failures) + ".")
        if all(s.done for s in states):
            echo(f"All {len(names)} service(s) are stable.")
            return
        if time.monotonic() >= deadline:
            pending = ", ".join(s.name for s in states if not s.done)
            raise DagopsError(
                f"Services not stable after {timeout:.0f}s: {pending}; see `invoke logs --env {dep.env}`."
            )
        time.sleep(poll)


@aws_boundary
def deploy_image(
    dep: Deployment,
    tag: str,
    echo: Echo = print,
    wait: bool = True,
    timeout: float = 1800.0,
    poll: float = 15.0,
) -> dict[str, str]:
    """Release image ``tag`` to every service and the run task family; return service -> new revision ARN."""
    image = image_ref(dep, tag)
    names = services(dep)
    families = dep.mapping("task_definition_families")
    if "run" not in families:
        raise DagopsError(
            f"Output 'task_definition_families' of environment {dep.env!r} has no 'run' family."
        )
    ecs = dep.client("ecs")
    described = {s["serviceName"]: s for s in _describe(dep, list(names.values()))}

    # Register every revision before touching a service: a bad definition stops the release before it starts.
    echo(f"Registering task definitions with {image}:")
    new: dict[str, str] = {}
    for service in names.values():
        new[service] = register_revision(dep, described[service]["taskDefinition"], image)
        echo(f"  {service}: {new[service].rsplit('/', 1)[-1]}")
    run_arn = register_revision(dep, families["run"], image)
    echo(f"  run tasks: {run_arn.rsplit('/', 1)[-1]}")

    for service, arn in new.items():
        ecs.update_service(cluster=dep.cluster, service=service, taskDefinition=arn)
        echo(f"Updated service {service}.")
    if wait:
        wait_stable(dep, new, echo=echo, timeout=timeout, poll=poll)
    return new


@aws_boundary
def restart_services(
    dep: Deployment, echo: Echo = print, wait: bool = True, timeout: float = 1800.0, poll: float = 15.0
) -> None:
    """Start fresh tasks for every service (same task definition), e.g. so code servers load new code now."""
    ecs = dep.client("ecs")
    current = {s["serviceName"]: s["taskDefinition"] for s in _describe(dep, list(services(dep).values()))}
    for service in current:
        ecs.update_service(cluster=dep.cluster, service=service, forceNewDeployment=True)
        echo(f"Restarting service {service}.")
    if wait:
        wait_stable(dep, current, echo=echo, timeout=timeout, poll=poll)
