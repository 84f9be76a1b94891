"""Pause an environment (services to zero, database stopped) and resume it, the cheap way to keep dev.

The desired count each service had is kept on the service itself, in the tag ``dagops:resume-count``,
so `resume` restores it from any machine. Autoscaling of a paused service is suspended, or it would
scale back up to its minimum.
"""

from __future__ import annotations

import time
from typing import Any

from dagops.errors import DagopsError
from dagops.operator.aws import Deployment, Echo, aws_boundary
from dagops.operator.aws.ecs import services, wait_stable

RESUME_TAG = "dagops:resume-count"
# How a manual pause or resume meets the office-hours schedule (modules/schedule, README "What it costs").
SCHEDULE_OFF = (
    "{env!r} has no office-hours schedule (schedule_enabled = false): it stays {state} until "
    "`invoke env.{other} --env {env}`."
)
AFTER_PAUSE = (
    "The office-hours schedule ({hours}) starts it again on the next active day (database at "
    "{database_start}, services at {start}); to keep it paused longer, set schedule_enabled = false and "
    "apply. An autoscaled webserver stays at 0 until `invoke env.resume` (pausing suspends its scaling)."
)
AFTER_RESUME = "The office-hours schedule ({hours}) stops it again at {stop} every day, this resume included."


def schedule_note(dep: Deployment, paused: bool) -> str:
    """One sentence on what the office-hours schedule will do next, from the root's ``schedule`` output."""
    hours = dep.outputs.get("schedule")
    if not isinstance(hours, dict):
        state, other = ("paused", "resume") if paused else ("running", "pause")
        return SCHEDULE_OFF.format(env=dep.env, state=state, other=other)
    days = ",".join(hours.get("days", []))
    described = f"{days} {hours.get('start')}-{hours.get('stop')} {hours.get('time_zone')}"
    template = AFTER_PAUSE if paused else AFTER_RESUME
    return template.format(hours=described, start=hours.get("start"), stop=hours.get("stop"),
                           database_start=hours.get("database_start"))  # fmt: skip


DEFAULT_COUNT = 1


def _service_arns(dep: Deployment) -> dict[str, dict[str, Any]]:
    names = list(services(dep).values())
    found = dep.client("ecs").describe_services(cluster=dep.cluster, services=names)
    by_name = {s["serviceName"]: s for s in found["services"] if s.get("status") == "ACTIVE"}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DagopsError(
            f"Service(s) {', '.join(missing)} not found in cluster {dep.cluster!r} of {dep.env!r}."
        )
    return by_name


def _suspend_scaling(dep: Deployment, service: str, suspended: bool) -> None:
    scaling = dep.client("application-autoscaling")
    resource = f"service/{dep.cluster}/{service}"
    targets = scaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    for target in targets:
        scaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=resource,
            ScalableDimension=target["ScalableDimension"],
            SuspendedState={
                "DynamicScalingInSuspended": suspended,
                "DynamicScalingOutSuspended": suspended,
                "ScheduledScalingSuspended": suspended,
            },
        )


def _db_status(dep: Deployment, db_id: str) -> str:
    rds = dep.client("rds")
    try:
        return str(
            rds.describe_db_instances(DBInstanceIdentifier=db_id)["DBInstances"][0]["DBInstanceStatus"]
        )
    except rds.exceptions.DBInstanceNotFoundFault:
        raise DagopsError(f"Database {db_id} of environment {dep.env!r} does not exist.") from None


def _wait_db(dep: Deployment, db_id: str, target: str, echo: Echo, timeout: float, poll: float) -> None:
    started = time.monotonic()
    while True:
        status = _db_status(dep, db_id)
        echo(f"[{time.monotonic() - started:5.0f}s] database {db_id}: {status}")
        if status == target:
            return
        if time.monotonic() - started > timeout:
            raise DagopsError(f"Database {db_id} is {status!r}, not {target!r}, after {timeout:.0f}s.")
        time.sleep(poll)


@aws_boundary
def pause(dep: Deployment, echo: Echo = print, timeout: float = 1800.0, poll: float = 15.0) -> None:
    """Scale every service to 0 (remembering its count), then stop the database."""
    ecs = dep.client("ecs")
    db_id = str(dep.require("db_instance_identifier"))
    for name, service in _service_arns(dep).items():
        count = int(service["desiredCount"])
        if count == 0:
            echo(f"Service {name} is already at 0.")
            continue
        ecs.tag_resource(resourceArn=service["serviceArn"], tags=[{"key": RESUME_TAG, "value": str(count)}])
        _suspend_scaling(dep, name, True)
        ecs.update_service(cluster=dep.cluster, service=name, desiredCount=0)
        echo(f"Service {name}: {count} -> 0 tasks.")
    wait_stable(dep, dict.fromkeys(_service_arns(dep)), echo=echo, timeout=timeout, poll=poll)

    status = _db_status(dep, db_id)
    if status == "stopped":
        echo(f"Database {db_id} is already stopped.")
    elif status != "available":
        raise DagopsError(f"Database {db_id} is {status!r}; it can be stopped only when 'available'.")
    else:
        dep.client("rds").stop_db_instance(DBInstanceIdentifier=db_id)
        _wait_db(dep, db_id, "stopped", echo, timeout, poll)
    echo(
        f"Environment {dep.env!r} is paused. AWS starts a stopped database again after 7 days; "
        f"`invoke env.resume --env {dep.env}` brings everything back."
    )
    echo(schedule_note(dep, paused=True))


@aws_boundary
def resume(dep: Deployment, echo: Echo = print, timeout: float = 1800.0, poll: float = 15.0) -> None:
    """Start the database, then bring every service back to the count it had when paused."""
    ecs = dep.client("ecs")
    db_id = str(dep.require("db_instance_identifier"))
    status = _db_status(dep, db_id)
    if status == "stopped":
        dep.client("rds").start_db_instance(DBInstanceIdentifier=db_id)
        _wait_db(dep, db_id, "available", echo, timeout, poll)
    elif status == "available":
        echo(f"Database {db_id} is already available.")
    else:
        _wait_db(dep, db_id, "available", echo, timeout, poll)

    for name, service in _service_arns(dep).items():
        tags = ecs.list_tags_for_resource(resourceArn=service["serviceArn"]).get("tags", [])
        saved = next((t["value"] for t in tags if t["key"] == RESUME_TAG), None)
        if service["desiredCount"] > 0 and saved is None:
            echo(f"Service {name} is already running {service['desiredCount']} task(s).")
            continue
        count = int(saved) if saved and saved.isdigit() else DEFAULT_COUNT
        ecs.update_service(cluster=dep.cluster, service=name, desiredCount=count)
        _suspend_scaling(dep, name, False)
        if saved is not None:
            ecs.untag_resource(resourceArn=service["serviceArn"], tagKeys=[RESUME_TAG])
        echo(f"Service {name}: 0 -> {count} tasks.")
    wait_stable(dep, dict.fromkeys(_service_arns(dep)), echo=echo, timeout=timeout, poll=poll)
    echo(f"Environment {dep.env!r} is running.")
    echo(schedule_note(dep, paused=False))
