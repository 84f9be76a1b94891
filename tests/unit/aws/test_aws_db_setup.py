"""invoke deploy.db-setup against moto's ECS: the run task definition, started as the one-off setup task.

moto never runs a container: the test stops the task itself (moto then reports exit code 0). What is
checked is what ECS is asked to start (the run family, the db-setup role, the db-setup command with the
master secret's ARN, the runs' network) and that the task waits until the task stops. The setup itself
runs against a real Postgres in tests/integration/test_db_rotation.py.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from aws_stack import REGION, Stack
from invoke import Context
from invoke.exceptions import Exit
from moto.ec2.models.elastic_network_interfaces import NetworkInterface

from dagops.operator.aws import Deployment
from dagops.operator.aws.db import setup_role
from dagops.operator.tasks import deploy as deploy_tasks

ROLE = "arn:aws:iam::123456789012:role/dagops-prod-db-setup"
SECRET = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:rds!db-1234-AbCdEf"


@pytest.fixture
def outputs(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    # moto 5.2.5's RunTask reads an ENI attribute its EC2 model does not set: give it one.
    monkeypatch.setattr(NetworkInterface, "private_dns_name", "ip-10-20-1-5.internal", raising=False)
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_subnets(SubnetIds=[stack.subnet])["Subnets"][0]["VpcId"]
    runs = ec2.create_security_group(GroupName="dagops-prod-runs", Description="runs", VpcId=vpc)["GroupId"]
    stack.outputs.update(
        db_setup_role_arn=ROLE, db_secret_arn=SECRET, subnet_ids=[stack.subnet], runs_security_group_id=runs
    )
    stack.write_outputs()
    return stack


def test_the_setup_task_is_the_run_family_with_the_setup_role_command_and_secret(outputs: Stack) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    started: list[dict[str, Any]] = []

    said: list[str] = []

    def stop_it(line: str) -> None:
        said.append(line)
        # The first progress line: the task is running; its container then ends (in moto: exit code 0).
        if "waiting" in line:
            arn = ecs.list_tasks(cluster="dagops-prod", startedBy="dagops-db-setup")["taskArns"][0]
            started.append(ecs.describe_tasks(cluster="dagops-prod", tasks=[arn])["tasks"][0])
            ecs.stop_task(cluster="dagops-prod", task=arn, reason="Essential container in task exited")

    arn = setup_role(Deployment.load("prod"), echo=stop_it, poll=0)
    assert said[-1].endswith("finished: Dagster's database role is ready.")
    task = started[0]
    assert task["taskArn"] == arn
    assert task["taskDefinitionArn"].endswith(":task-definition/dagops-prod-run:1")
    assert task["overrides"]["taskRoleArn"] == ROLE
    container = task["overrides"]["containerOverrides"][0]
    assert container["name"] == "run"
    assert container["command"] == ["db-setup"]
    assert container["environment"] == [{"name": "DAGOPS_DB_MASTER_SECRET_ARN", "value": SECRET}]
    attachment = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert attachment["subnetId"] == outputs.subnet


def test_missing_outputs_are_one_sentence(stack: Stack) -> None:
    with pytest.raises(Exit) as raised:
        deploy_tasks.db_setup(Context(), env="prod")
    assert raised.value.code == 1
    assert "db_setup_role_arn" in str(raised.value.message)
    assert boto3.client("ecs", region_name=REGION).list_tasks(cluster="dagops-prod")["taskArns"] == []
