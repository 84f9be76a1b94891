"""logs, url, aws-credentials and env pause/resume against moto, through the invoke tasks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import boto3
import pytest
from aws_stack import REGION, Stack
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from invoke import Context
from invoke.exceptions import Exit

from dagops.errors import DagopsError
from dagops.operator.aws import Deployment, aws_errors
from dagops.operator.aws.logs import parse_since, show
from dagops.operator.aws.pause import RESUME_TAG
from dagops.operator.tasks import deploy as tasks

PutEvents = Callable[[str, str, list[tuple[int, str]]], None]


def test_logs_merge_every_group_by_time(
    stack: Stack, put_events: PutEvents, capsys: pytest.CaptureFixture[str]
) -> None:
    now = int(time.time() * 1000)
    groups = stack.outputs["log_group_names"]
    put_events(
        groups["webserver"], "webserver/web/1", [(now - 3000, "web started"), (now - 1000, "web served /")]
    )
    put_events(groups["code-main"], "code-location/cl/1", [(now - 2000, "sync: revision abc swapped in")])
    put_events(groups["daemon"], "daemon/d/1", [(now - 3_600_000, "an hour ago")])

    tasks.logs(Context(), env="prod")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 2)[1:] for line in lines] == [
        ["webserver", "web started"],
        ["code-main", "sync: revision abc swapped in"],
        ["webserver", "web served /"],
    ]

    tasks.logs(Context(), env="prod", location="main", since="2h")
    assert [line.split(" ", 2)[2] for line in capsys.readouterr().out.splitlines()] == [
        "sync: revision abc swapped in"
    ]
    tasks.logs(Context(), env="prod", service="daemon", since="2h")
    assert capsys.readouterr().out.splitlines()[0].endswith("daemon an hour ago")


def test_logs_follow_prints_new_events_once(stack: Stack, put_events: PutEvents) -> None:
    now = int(time.time() * 1000)
    group = stack.outputs["log_group_names"]["run"]
    put_events(group, "run/r/1", [(now - 500, "run 1 started")])
    printed: list[str] = []
    polls = 0

    def echo(line: str) -> None:
        printed.append(line)

    real_sleep = time.sleep

    def sleep(_: float) -> None:  # the follow loop's pause: add an event once, then stop following
        nonlocal polls
        polls += 1
        if polls == 1:
            logs = boto3.client("logs", region_name=REGION)
            logs.put_log_events(
                logGroupName=group,
                logStreamName="run/r/1",
                logEvents=[{"timestamp": now, "message": "run 1 done"}],
            )
        elif polls == 3:
            raise KeyboardInterrupt
        real_sleep(0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "sleep", sleep)
        with pytest.raises(KeyboardInterrupt):
            show(Deployment.load("prod"), service="run", follow=True, echo=echo, poll=0)
    assert [line.split(" ", 2)[2] for line in printed] == ["run 1 started", "run 1 done"]


def test_logs_bad_input_is_one_clear_error(stack: Stack) -> None:
    with pytest.raises(Exit, match="no code location 'etl' \\(deployed: main\\)"):
        tasks.logs(Context(), env="prod", location="etl")
    with pytest.raises(Exit, match="Unknown service 'web'"):
        tasks.logs(Context(), env="prod", service="web")
    with pytest.raises(Exit, match="Invalid --since '10 minutes'"):
        tasks.logs(Context(), env="prod", since="10 minutes")
    with pytest.raises(Exit, match="not both"):
        tasks.logs(Context(), env="prod", service="daemon", location="main")
    assert parse_since("90s") == 90 and parse_since("2h") == 7200
    with pytest.raises(DagopsError):
        parse_since("0m")


def test_url_prefers_the_output(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.write_outputs(webserver_url="https://dagster.example.org")
    tasks.show_url(Context(), env="prod")
    assert capsys.readouterr().out == "https://dagster.example.org\n"


def test_url_finds_the_webserver_tasks_public_ip(
    stack: Stack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.moto_api import state_manager

    # Hold tasks in the state set below (moto otherwise walks them from PROVISIONING to STOPPED).
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
    request.addfinalizer(lambda: state_manager.unset_transition(model_name="ecs::task"))

    # moto 5.2.5's RunTask reads NetworkInterface.private_dns_name, which its EC2 model lacks.
    monkeypatch.setattr(
        NetworkInterface,
        "private_dns_name",
        property(lambda eni: f"ip-{eni.private_ip_address.replace('.', '-')}.{REGION}.compute.internal"),
        raising=False,
    )
    ecs = boto3.client("ecs", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    with pytest.raises(Exit, match="No running webserver task"):
        tasks.show_url(Context(), env="prod")

    task = ecs.run_task(
        cluster="dagops-prod",
        taskDefinition="dagops-prod-webserver",
        launchType="FARGATE",
        group=f"service:{stack.services['webserver']}",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [stack.subnet], "securityGroups": [stack.security_group]}
        },
    )["tasks"][0]
    eni = next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == "networkInterfaceId")
    from moto.ecs.models import ecs_backends

    for cluster_tasks in ecs_backends["123456789012"][REGION].tasks.values():
        for moto_task in cluster_tasks.values():
            moto_task.status = "RUNNING"
    # Fargate gives a task in a public subnet a public IP on its ENI (here: an Elastic IP on it).
    allocation = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=allocation["AllocationId"], NetworkInterfaceId=eni)

    tasks.show_url(Context(), env="prod")
    assert capsys.readouterr().out == f"http://{allocation['PublicIp']}:3000\n"


def test_aws_credentials_print_two_lines_and_nothing_else(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks.credentials(Context(), env="prod")
    assert capsys.readouterr().out == "AKIAFROMSECRET0000001\nsecret/from+manager\n"

    stack.write_outputs(aws_access_key_id="AKIAFROMOUTPUTS000001", aws_secret_access_key="from/outputs")
    tasks.credentials(Context(), env="prod")
    assert capsys.readouterr().out == "AKIAFROMOUTPUTS000001\nfrom/outputs\n"


def test_aws_credentials_errors(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.write_outputs(aws_credentials_secret_arn=None)
    with pytest.raises(Exit, match="neither aws_access_key_id"):
        tasks.credentials(Context(), env="prod")
    gone = stack.outputs["aws_credentials_secret_arn"].replace("s3-credentials", "deleted")
    stack.write_outputs(aws_credentials_secret_arn=gone)
    with pytest.raises(Exit, match="does not exist"):
        tasks.credentials(Context(), env="prod")
    assert capsys.readouterr().out == ""


def _counts(stack: Stack) -> dict[str, int]:
    ecs = boto3.client("ecs", region_name=REGION)
    found = ecs.describe_services(cluster="dagops-prod", services=list(stack.services.values()))["services"]
    return {s["serviceName"]: s["desiredCount"] for s in found}


def _db_status() -> str:
    rds = boto3.client("rds", region_name=REGION)
    return str(
        rds.describe_db_instances(DBInstanceIdentifier="dagops-prod")["DBInstances"][0]["DBInstanceStatus"]
    )


def _scaling_suspended(stack: Stack) -> bool:
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    target = scaling.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[f"service/dagops-prod/{stack.services['webserver']}"]
    )["ScalableTargets"][0]
    return bool(target.get("SuspendedState", {}).get("DynamicScalingOutSuspended"))


def test_pause_and_resume_round_trip(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.update_service(cluster="dagops-prod", service=stack.services["webserver"], desiredCount=2)
    boto3.client("application-autoscaling", region_name=REGION).register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=f"service/dagops-prod/{stack.services['webserver']}",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=2,
    )
    assert not _scaling_suspended(stack)
    before = _counts(stack)
    assert before[stack.services["webserver"]] == 2

    tasks.pause_env(Context(), env="prod")
    assert set(_counts(stack).values()) == {0}
    assert _db_status() == "stopped"
    assert _scaling_suspended(stack)  # or autoscaling would bring the webserver back to its minimum
    web_arn = ecs.describe_services(cluster="dagops-prod", services=[stack.services["webserver"]])[
        "services"
    ][0]["serviceArn"]
    assert {"key": RESUME_TAG, "value": "2"} in ecs.list_tags_for_resource(resourceArn=web_arn)["tags"]
    out = capsys.readouterr().out
    assert f"Service {stack.services['webserver']}: 2 -> 0 tasks." in out
    assert "database dagops-prod: stopped" in out

    tasks.pause_env(Context(), env="prod")  # pausing twice changes nothing and forgets nothing
    assert "already stopped" in capsys.readouterr().out

    tasks.resume_env(Context(), env="prod")
    assert _counts(stack) == before
    assert _db_status() == "available"
    assert not _scaling_suspended(stack)
    assert all(t["key"] != RESUME_TAG for t in ecs.list_tags_for_resource(resourceArn=web_arn)["tags"])
    out = capsys.readouterr().out
    assert f"Service {stack.services['webserver']}: 0 -> 2 tasks." in out
    assert "Environment 'prod' is running." in out


def test_pause_and_resume_say_what_the_office_hours_schedule_does_next(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks.pause_env(Context(), env="prod")
    assert (
        "has no office-hours schedule (schedule_enabled = false): it stays paused" in capsys.readouterr().out
    )
    stack.write_outputs(
        schedule={
            "days": ["MON", "TUE", "WED", "THU", "FRI"],
            "start": "08:00",
            "stop": "18:00",
            "time_zone": "Australia/Sydney",
            "database_start": "07:45",
        }
    )
    tasks.resume_env(Context(), env="prod")
    out = capsys.readouterr().out
    assert "Environment 'prod' is running." in out
    assert "(MON,TUE,WED,THU,FRI 08:00-18:00 Australia/Sydney) stops it again at 18:00 every day" in out
    tasks.pause_env(Context(), env="prod")
    out = capsys.readouterr().out
    assert "starts it again on the next active day (database at 07:45, services at 08:00)" in out
    assert _db_status() == "stopped"


def test_pause_needs_the_database_output(stack: Stack) -> None:
    stack.write_outputs(db_instance_identifier=None)
    with pytest.raises(Exit, match="no output 'db_instance_identifier'"):
        tasks.pause_env(Context(), env="prod")
    assert set(_counts(stack).values()) == {1}


def test_outputs_file_must_be_readable(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGOPS_TF_OUTPUTS_FILE", str(stack.outputs_file.with_name("missing.json")))
    with pytest.raises(Exit, match="Cannot read tofu outputs"):
        tasks.show_url(Context(), env="prod")
    stack.outputs_file.write_text(json.dumps({"region": {"value": REGION}}))
    monkeypatch.setenv("DAGOPS_TF_OUTPUTS_FILE", str(stack.outputs_file))
    with pytest.raises(Exit, match="no output 'service_names'"):
        tasks.show_url(Context(), env="prod")


def test_aws_errors_become_one_sentence(stack: Stack) -> None:
    """A missing cluster, a refused call and missing credentials: a sentence naming service and operation."""
    stack.write_outputs(cluster_name="no-such-cluster", webserver_url=None)
    with pytest.raises(Exit, match=r"ECS cluster 'no-such-cluster' of environment 'prod' does not exist"):
        tasks.show_url(Context(), env="prod")
    with pytest.raises(Exit, match=r"ECS cluster 'no-such-cluster' .*DescribeServices"):
        tasks.release(Context(), env="prod", image_tag="v1")

    stack.write_outputs(db_instance_identifier="no-such-db")
    with pytest.raises(Exit, match=r"^error: Database no-such-db of environment 'prod' does not exist\.$"):
        tasks.resume_env(Context(), env="prod")

    dep = Deployment.load("prod")
    with pytest.raises(DagopsError, match="No AWS credentials found for environment 'prod'"), aws_errors(dep):
        raise NoCredentialsError()
    with pytest.raises(DagopsError) as failed, aws_errors(dep):
        raise EndpointConnectionError(endpoint_url="https://ecs.example.invalid/")
    assert str(failed.value).startswith("AWS request failed for environment 'prod': Could not connect")
    assert "\n" not in str(failed.value)


@pytest.mark.parametrize("timeout", ["abc", "-5", "0", "1.5", ""])
def test_timeout_must_be_a_positive_whole_number(stack: Stack, timeout: str) -> None:
    with pytest.raises(Exit, match="--timeout must be a"):
        tasks.release(Context(), env="prod", image_tag="v1", timeout=timeout)
