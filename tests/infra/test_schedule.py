"""Office hours (modules/schedule) applied for real against moto, read back with boto3.

live/dev, whose committed terraform.tfvars switches the schedule on, is applied in a throwaway copy of
the tree against its own moto server (EventBridge Scheduler and IAM included); then the schedules, their
targets and times are compared with what that tfvars file says, and the role they act with is checked
to allow exactly the switching actions on exactly the switched resources. live/prod (schedule off by
default) is planned with and without ``schedule_enabled``: its autoscaled webserver is switched by
Application Auto Scaling scheduled actions (moto does not hold scalable targets; see
test_emulated_apply.py), every other service by EventBridge Scheduler.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tfharness import (
    ACCOUNT_VAR,
    LOCATIONS,
    MOTO_ACCOUNT,
    REGION,
    REPO,
    Applied,
    Tofu,
    copy_tree,
    start_moto,
    write_override,
)

from dagops.operator.cost import hcl
from dagops.ports import free_port

DAYS = "MON,TUE,WED,THU,FRI,SAT,SUN"


def cron(hhmm: str, days: list[str] | None, lead_minutes: int = 0) -> str:
    """The EventBridge cron expression of a local time; ``days`` None means every day."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    total = hours * 60 + minutes - lead_minutes
    if days is None:
        return f"cron({total % 60} {total // 60} * * ? *)"
    return f"cron({total % 60} {total // 60} ? * {','.join(days)} *)"


def minus_minutes(hhmm: str, minutes: int) -> str:
    hours, mins = (int(part) for part in hhmm.split(":"))
    total = hours * 60 + mins - minutes
    return f"{total // 60:02d}:{total % 60:02d}"


@pytest.fixture
def dev(dev_applied: Applied) -> Applied:
    return dev_applied


@pytest.fixture(scope="module")
def dev_tfvars() -> dict[str, Any]:
    values = hcl.read_tfvars(REPO / "live" / "dev" / "terraform.tfvars")
    assert values["schedule_enabled"] is True, "live/dev documents the office-hours schedule as on"
    return values


def test_dev_schedules_fire_when_the_tfvars_say_on_what_they_say(
    dev: Applied, dev_tfvars: dict[str, Any]
) -> None:
    scheduler = dev.client("scheduler")
    group = "dagops-dev-office-hours"
    names = sorted(s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"])
    stack = dev.outputs["service_names"]["stack"]
    assert names == sorted(["database-start", "database-stop", f"{stack}-start", f"{stack}-stop"])
    days = dev_tfvars["schedule_days"]
    expected = {
        # name: (expression, target API, input)
        f"{stack}-start": (
            cron(dev_tfvars["schedule_start"], days),
            "ecs:updateService",
            {"cluster": dev.outputs["cluster_name"], "service": stack, "desiredCount": 1},
        ),
        f"{stack}-stop": (
            cron(dev_tfvars["schedule_stop"], None),
            "ecs:updateService",
            {"cluster": dev.outputs["cluster_name"], "service": stack, "desiredCount": 0},
        ),
        "database-start": (
            cron(dev_tfvars["schedule_start"], days, lead_minutes=15),
            "rds:startDBInstance",
            {"DbInstanceIdentifier": dev.outputs["db_instance_identifier"]},
        ),
        "database-stop": (
            cron(dev_tfvars["schedule_stop"], None),
            "rds:stopDBInstance",
            {"DbInstanceIdentifier": dev.outputs["db_instance_identifier"]},
        ),
    }
    role_arn = f"arn:aws:iam::{MOTO_ACCOUNT}:role/dagops-dev-office-hours"
    for name, (expression, api, target_input) in expected.items():
        schedule = scheduler.get_schedule(GroupName=group, Name=name)
        assert schedule["ScheduleExpression"] == expression, name
        assert schedule["ScheduleExpressionTimezone"] == dev_tfvars["schedule_time_zone"], name
        assert schedule["State"] == "ENABLED"
        assert schedule["Target"]["Arn"] == f"arn:aws:scheduler:::aws-sdk:{api}", name
        assert schedule["Target"]["RoleArn"] == role_arn, name
        assert json.loads(schedule["Target"]["Input"]) == target_input, name
    # Stopping every day (not only on active days) is what catches RDS's own restart after 7 days.
    assert expected["database-stop"][0].endswith("* * ? *)")
    assert dev.outputs["schedule"] == {
        "days": days,
        "start": dev_tfvars["schedule_start"],
        "stop": dev_tfvars["schedule_stop"],
        "time_zone": dev_tfvars["schedule_time_zone"],
        "database_start": minus_minutes(dev_tfvars["schedule_start"], 15),
    }


def test_the_schedule_role_may_switch_exactly_the_services_and_the_database(dev: Applied) -> None:
    iam = dev.client("iam")
    role = iam.get_role(RoleName="dagops-dev-office-hours")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    [assume] = trust["Statement"]
    assert assume["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert assume["Condition"]["StringEquals"]["aws:SourceAccount"] == MOTO_ACCOUNT
    assert assume["Condition"]["ArnLike"]["aws:SourceArn"] == (
        f"arn:aws:scheduler:{REGION}:{MOTO_ACCOUNT}:schedule/dagops-dev-office-hours/*"
    )
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == ["office-hours"]
    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="office-hours")["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document

    def as_list(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else sorted(value)

    granted = {
        tuple(as_list(s["Action"])): as_list(s["Resource"])
        for s in document["Statement"]
        if s["Effect"] == "Allow"
    }
    stack = dev.outputs["service_names"]["stack"]
    cluster = dev.outputs["cluster_name"]
    database = dev.outputs["db_instance_identifier"]
    assert granted == {
        ("ecs:UpdateService",): [f"arn:aws:ecs:{REGION}:{MOTO_ACCOUNT}:service/{cluster}/{stack}"],
        ("rds:StartDBInstance", "rds:StopDBInstance"): [f"arn:aws:rds:{REGION}:{MOTO_ACCOUNT}:db:{database}"],
    }
    assert all("Condition" not in s and s["Effect"] == "Allow" for s in document["Statement"])


def _plan(tofu: Tofu, root: Path, *variables: str) -> dict[str, Any]:
    tofu.run(
        "plan", "-input=false", "-no-color", "-lock=false", "-out=tfplan", ACCOUNT_VAR, *variables, cwd=root
    )
    return json.loads(tofu.run("show", "-json", "tfplan", cwd=root).stdout)


@pytest.fixture(scope="module")
def prod_root(tofu: Tofu, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("schedule-prod")
    root = copy_tree(base, locations=LOCATIONS) / "live" / "prod"
    moto = start_moto()
    try:
        write_override(root, moto.endpoint, base / "prod.tfstate")
        tofu.run("init", "-input=false", "-no-color", cwd=root)
        yield root
    finally:
        moto.stop()


def _changes(plan: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        c["address"]: c["change"]["after"]
        for c in plan["resource_changes"]
        if c["type"] == resource_type and "module.schedule" in c["address"]
    }


def test_prod_runs_around_the_clock_unless_the_schedule_is_enabled(tofu: Tofu, prod_root: Path) -> None:
    off = _plan(tofu, prod_root)
    created = [
        c for c in off["resource_changes"] if c["mode"] == "managed" and "module.schedule" in c["address"]
    ]
    assert not created

    on = _plan(tofu, prod_root, "-var=schedule_enabled=true", "-var=schedule_time_zone=Europe/Berlin")
    scaling = _changes(on, "aws_appautoscaling_scheduled_action")
    # The autoscaled webserver is switched through its scaling bounds, so target tracking cannot undo it.
    bounds = {after["schedule"]: after["scalable_target_action"][0] for after in scaling.values()}
    assert bounds == {
        cron("08:00", ["MON", "TUE", "WED", "THU", "FRI"]): {"min_capacity": "1", "max_capacity": "2"},
        cron("18:00", None): {"min_capacity": "0", "max_capacity": "0"},
    }
    assert {a["resource_id"] for a in scaling.values()} == {"service/dagops-prod/dagops-prod-webserver"}
    assert {a["timezone"] for a in scaling.values()} == {"Europe/Berlin"}
    schedules = _changes(on, "aws_scheduler_schedule")
    switched = {json.loads(a["target"][0]["input"]).get("service") for a in schedules.values()}
    assert switched == {"dagops-prod-daemon", "dagops-prod-code-main", "dagops-prod-code-sales_ops", None}
    assert {a["name"] for a in schedules.values() if "service" not in a["target"][0]["input"]} == {
        "database-start",
        "database-stop",
    }
    assert {a["schedule_expression_timezone"] for a in schedules.values()} == {"Europe/Berlin"}


def _closed_port() -> str:
    """An endpoint nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (["-var=schedule_start=8:00"], "schedule_start must be a 24-hour time"),
        (['-var=schedule_days=["MONDAY"]'], "schedule_days must list at least one of MON"),
        (["-var=schedule_time_zone=Sydney"], "schedule_time_zone must be an IANA time zone"),
        (
            ["-var=schedule_enabled=true", "-var=schedule_start=18:00", "-var=schedule_stop=08:00"],
            "schedule_stop must be later in the day than schedule_start",
        ),
        (
            ["-var=schedule_enabled=true", "-var=schedule_start=00:05"],
            "schedule_start must be 00:15 or later",
        ),
    ],
)
def test_bad_office_hours_are_refused_by_plan(
    tofu: Tofu, tmp_path_factory: pytest.TempPathFactory, variables: list[str], message: str
) -> None:
    base = tmp_path_factory.mktemp("schedule-bad")
    root = copy_tree(base, locations=LOCATIONS) / "live" / "prod"
    write_override(root, _closed_port(), base / "state.tfstate")
    tofu.run("init", "-input=false", "-no-color", cwd=root)
    proc = tofu.run(
        "plan", "-input=false", "-no-color", "-lock=false", ACCOUNT_VAR, *variables, cwd=root, check=False
    )
    assert proc.returncode != 0
    assert message in " ".join((proc.stdout + proc.stderr).split())
