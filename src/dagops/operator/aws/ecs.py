"""ECS releases: record a pushed image as the environment's release, let tofu roll it out, wait for it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagops.errors import DagopsError
from dagops.names import validate_image_tag
from dagops.operator.aws import Deployment, Echo, aws_boundary, db

# The live roots' address of the run task definition (modules/dagster `module "run_task"`).
RUN_TASK_ADDRESS = "module.dagster.module.run_task"


def image_ref(dep: Deployment, tag: str) -> str:
    return f"{dep.require('ecr_repository_url')}:{validate_image_tag(tag)}"


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
def require_pushed(dep: Deployment, tag: str) -> None:
    """Raise unless image ``tag`` is in the environment's ECR repository (no task may name a missing one)."""
    repository = str(dep.require("ecr_repository_url")).split("/", 1)[-1]
    ecr = dep.client("ecr")
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": validate_image_tag(tag)}])
    except ecr.exceptions.ImageNotFoundException:
        raise DagopsError(
            f"Image tag {tag!r} is not in the ECR repository {repository!r} of environment {dep.env!r}; "
            f"push it first (`invoke image.push --env {dep.env}`)."
        ) from None


@aws_boundary
def record_release(dep: Deployment, tag: str) -> None:
    """Write ``tag`` to the environment's image-tag parameter, which every tofu task definition names."""
    dep.client("ssm").put_parameter(
        Name=str(dep.require("image_tag_parameter")),
        Value=validate_image_tag(tag),
        Type="String",
        Overwrite=True,
    )


def _images(ecs: Any, task_definition: str) -> set[str]:
    described = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    return {c["image"] for c in described["containerDefinitions"]}


@aws_boundary
def deploy_image(
    dep: Deployment,
    tag: str,
    apply: Callable[[Sequence[str]], None],
    echo: Echo = print,
    wait: bool = True,
    timeout: float = 1800.0,
    poll: float = 15.0,
) -> dict[str, str]:
    """Release pushed image ``tag``: record it, let tofu roll it out (``apply``), wait until stable.

    Tofu owns what every task runs: its task definitions name the tag in the image-tag parameter and its
    services follow them, so a release is "record the tag, apply", and a later `tofu apply` (a new code
    location, a cpu change) keeps the image and carries the change. ``apply(targets)`` runs tofu apply on
    the environment's root (``targets`` empty: everything). The first release registers the run task
    definition alone, runs the db-setup task from it, then starts the services. Returns service -> task
    definition.
    """
    image = image_ref(dep, tag)
    if "run" not in dep.mapping("task_definition_families"):
        raise DagopsError(
            f"Output 'task_definition_families' of environment {dep.env!r} has no 'run' family."
        )
    _describe(dep, list(services(dep).values()))  # every service exists before anything changes
    require_pushed(dep, tag)
    ecs = dep.client("ecs")
    run_family = dep.mapping("task_definition_families")["run"]
    try:
        ecs.describe_task_definition(taskDefinition=run_family)
        first = False
    except ecs.exceptions.ClientException:
        first = True  # no release yet: no run task definition, no service running
    record_release(dep, tag)
    if first:
        # Dagster's database role must exist before any service logs in: register the run task
        # definition alone, run the db-setup task from it, then start the services.
        echo(f"First release of environment {dep.env!r}: the run task definition, then the database role.")
        apply([RUN_TASK_ADDRESS])
        db.setup_role(Deployment.load(dep.env), echo=echo)
    echo(f"Recorded {image} as the release of environment {dep.env!r}; applying its tofu root:")
    apply([])

    dep = Deployment.load(dep.env)  # the apply may have added services (a new code location)
    ecs = dep.client("ecs")
    current = {s["serviceName"]: s["taskDefinition"] for s in _describe(dep, list(services(dep).values()))}
    families = dep.mapping("task_definition_families")
    stale = [name for name, td in current.items() if _images(ecs, td) != {image}]
    if _images(ecs, families["run"]) != {image}:
        stale.append(f"the run family {families['run']}")
    if stale:
        raise DagopsError(
            f"After the apply, {', '.join(stale)} still run another image than {image}; "
            "is image_tag pinned in the environment's terraform.tfvars?"
        )
    if wait:
        wait_stable(dep, current, echo=echo, timeout=timeout, poll=poll)
    return current


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
