"""EcsRunLauncher that starts each run with its code location's own task role.

dagster-aws's EcsRunLauncher reads ``task_role_arn`` from a code location's container context
(``dagster api grpc --container-context '{"ecs": {"task_role_arn": ...}}'``, set by the sync agent from
``DAGOPS_RUN_TASK_ROLE_ARN``) but applies it only to task definitions it registers itself. Our launcher
runs the `run` task definition that tofu and ``invoke deploy`` maintain (``task_definition`` in
images/dagster.yaml), and then the context's role is ignored: every run would get that definition's
role. This subclass passes the location's role as the RunTask ``taskRoleArn`` override instead.

The location's role wins over a run tag: a job's own tags (``ecs/task_overrides``,
``ecs/run_task_kwargs``) cannot pick another location's role, so a run is refused when its
``ecs/run_task_kwargs`` tag replaces the overrides or its ``ecs/task_overrides`` tag names another role.
A run whose location has no role in its context runs with the task definition's default role, which
reaches no location's code or assets (modules/iam).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._core.storage.dagster_run import DagsterRun
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.ecs.container_context import EcsContainerContext


class LocationRoleEcsRunLauncher(EcsRunLauncher):
    """EcsRunLauncher that applies the code location's ``task_role_arn`` as the run task's role."""

    def _get_task_overrides(
        self, container_context: EcsContainerContext, run: DagsterRun
    ) -> Mapping[str, Any]:
        overrides = dict(super()._get_task_overrides(container_context, run))
        role = container_context.task_role_arn
        asked = overrides.get("taskRoleArn")
        if asked and asked != role:
            raise ValueError(
                f"Run {run.run_id}: its ecs/task_overrides tag asks for task role {asked}; runs of a code "
                "location get that location's role only."
            )
        if role:
            overrides["taskRoleArn"] = role
        return overrides

    def _get_run_task_kwargs_from_run(self, run: DagsterRun) -> Mapping[str, Any]:
        kwargs = super()._get_run_task_kwargs_from_run(run)
        if "overrides" in kwargs or "taskDefinition" in kwargs:
            raise ValueError(
                f"Run {run.run_id}: its ecs/run_task_kwargs tag sets overrides or taskDefinition; the run "
                "launcher sets those (they carry the code location's task role)."
            )
        return kwargs
