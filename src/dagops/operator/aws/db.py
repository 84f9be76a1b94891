"""The database's one-off setup task: Dagster's own role, created with the master secret read at that moment.

The run task definition (same image, same network as runs) is started once with the ``db-setup`` command
and the db-setup role as its task role, the only role that may read the RDS-managed master secret
(modules/iam). The task exits when the role is ready (dagops.runtime.db_setup); this waits for it and reports.
"""

from __future__ import annotations

import time
from typing import Any

from dagops.errors import DagopsError
from dagops.operator.aws import Deployment, Echo, aws_boundary

CONTAINER = "run"  # the run task definition's container (EcsRunLauncher's default container_name)


def _subnets(dep: Deployment) -> list[str]:
    value = dep.require("subnet_ids")
    if not isinstance(value, list) or not value:
        raise DagopsError(f"Output 'subnet_ids' of environment {dep.env!r} should be a non-empty list.")
    return [str(s) for s in value]


@aws_boundary
def setup_role(dep: Deployment, echo: Echo = print, timeout: float = 900.0, poll: float = 10.0) -> str:
    """Run the db-setup task to completion; return its task ARN, raise if it does not exit 0."""
    ecs = dep.client("ecs")
    family = dep.mapping("task_definition_families").get("run")
    if not family:
        raise DagopsError(
            f"Output 'task_definition_families' of environment {dep.env!r} has no 'run' family."
        )
    overrides: dict[str, Any] = {
        "taskRoleArn": str(dep.require("db_setup_role_arn")),
        "containerOverrides": [
            {
                "name": CONTAINER,
                "command": ["db-setup"],
                "environment": [
                    {"name": "DAGOPS_DB_MASTER_SECRET_ARN", "value": str(dep.require("db_secret_arn"))}
                ],
            }
        ],
    }
    response = ecs.run_task(
        cluster=dep.cluster,
        taskDefinition=family,
        launchType="FARGATE",
        count=1,
        startedBy="dagops-db-setup",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": _subnets(dep),
                "securityGroups": [str(dep.require("runs_security_group_id"))],
                "assignPublicIp": "ENABLED",
            }
        },
        overrides=overrides,
    )
    if response.get("failures") or not response.get("tasks"):
        reasons = "; ".join(f.get("reason", "?") for f in response.get("failures", [])) or "no task started"
        raise DagopsError(f"The database setup task of environment {dep.env!r} did not start: {reasons}.")
    arn = str(response["tasks"][0]["taskArn"])
    task_id = arn.rsplit("/", 1)[-1]
    echo(f"Started the database setup task {task_id}; waiting for it to finish.")
    started = time.monotonic()
    while True:
        task = ecs.describe_tasks(cluster=dep.cluster, tasks=[arn])["tasks"][0]
        if task.get("lastStatus") == "STOPPED":
            break
        if time.monotonic() - started >= timeout:
            raise DagopsError(
                f"The database setup task {task_id} did not finish within {timeout:.0f}s; "
                f"see `invoke logs --env {dep.env} --service run`."
            )
        echo(f"[{time.monotonic() - started:5.0f}s] database setup task: {task.get('lastStatus', '?')}")
        time.sleep(poll)
    container: dict[str, Any] = next(
        (c for c in task.get("containers", []) if c.get("name") == CONTAINER), {}
    )
    code = container.get("exitCode")
    if code != 0:
        why = container.get("reason") or task.get("stoppedReason") or "no reason given"
        raise DagopsError(
            f"The database setup task {task_id} stopped with exit code {code} ({why}); "
            f"see `invoke logs --env {dep.env} --service run`."
        )
    echo(f"Database setup task {task_id} finished: Dagster's database role is ready.")
    return arn
