"""A deployed environment, built in moto the way the tofu roots build it, with its outputs file (fixtures).

The repository root (``DAGOPS_ROOT``) is a temporary folder holding ``live/prod/main.tf`` and one code
location, so environment-name validation and the registry read what a checkout would hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

REGION = "ap-southeast-2"
ENV = "prod"
PREFIX = "dagops-prod"
LOCATIONS = ("main",)


@dataclass
class Stack:
    root: Path
    outputs_file: Path
    outputs: dict[str, Any]
    subnet: str
    security_group: str
    services: dict[str, str] = field(default_factory=dict)

    def write_outputs(self, **changes: Any) -> None:
        """Rewrite the outputs file (``tofu output -json`` shape) with ``changes`` (None removes a key)."""
        data = {**self.outputs, **changes}
        data = {k: v for k, v in data.items() if v is not None}
        self.outputs_file.write_text(
            json.dumps({k: {"value": v, "type": "string", "sensitive": False} for k, v in data.items()})
        )


def _task_definition(ecs: Any, family: str, container: str, command: list[str]) -> str:
    arn = ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        runtimePlatform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        executionRoleArn="arn:aws:iam::123456789012:role/dagops-prod-execution",
        taskRoleArn="arn:aws:iam::123456789012:role/dagops-prod-task",
        containerDefinitions=[
            {
                "name": container,
                "image": "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/dagops-prod:bootstrap",
                "essential": True,
                "memory": 512,
                "command": command,
                "environment": [{"name": "DAGOPS_ENV", "value": ENV}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": f"/dagops/{ENV}/{family}",
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": container,
                    },
                },
            }
        ],
        tags=[{"key": "Project", "value": "dagops"}],
    )["taskDefinition"]["taskDefinitionArn"]
    return str(arn)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # moto reports this many running tasks for every service, so rollouts complete.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")

    root = tmp_path / "repo"
    (root / "live" / ENV).mkdir(parents=True)
    (root / "live" / ENV / "main.tf").write_text("# prod root\n")
    (root / "code_locations" / "main").mkdir(parents=True)
    (root / "code_locations" / "main" / "definitions.py").write_text(
        "import dagster as dg\ndefs = dg.Definitions()\n"
    )
    (root / "code_locations" / "locations.yaml").write_text(
        "locations:\n- name: main\n  source: code_locations/main\n  entry: definitions.py\n"
    )
    monkeypatch.setenv("DAGOPS_ROOT", str(root))

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="dagops-prod-tasks", Description="tasks", VpcId=vpc)[
            "GroupId"
        ]

        repo_url = boto3.client("ecr", region_name=REGION).create_repository(repositoryName=PREFIX)[
            "repository"
        ]["repositoryUri"]
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName=PREFIX)
        services = {
            "webserver": f"{PREFIX}-webserver",
            "daemon": f"{PREFIX}-daemon",
            "code-main": f"{PREFIX}-code-main",
        }
        families = {**{k: f"{PREFIX}-{k}" for k in services}, "run": f"{PREFIX}-run"}
        roles = {"webserver": ["webserver"], "daemon": ["daemon"], "code-main": ["code-location"], "run": []}
        containers = {
            "webserver": "webserver",
            "daemon": "daemon",
            "code-main": "code-location",
            "run": "run",
        }
        for key, family in families.items():
            arn = _task_definition(ecs, family, containers[key], roles[key])
            if key in services:
                ecs.create_service(
                    cluster=PREFIX,
                    serviceName=services[key],
                    taskDefinition=arn,
                    desiredCount=1,
                    launchType="FARGATE",
                    networkConfiguration={
                        "awsvpcConfiguration": {
                            "subnets": [subnet],
                            "securityGroups": [sg],
                            "assignPublicIp": "ENABLED",
                        }
                    },
                    deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
                )

        logs = boto3.client("logs", region_name=REGION)
        groups = {key: f"/dagops/{ENV}/{key}" for key in ("webserver", "daemon", "run", "code-main")}
        for group in groups.values():
            logs.create_log_group(logGroupName=group)

        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"{PREFIX}/s3-credentials",
            SecretString=json.dumps(
                {"aws_access_key_id": "AKIAFROMSECRET0000001", "aws_secret_access_key": "secret/from+manager"}
            ),
        )["ARN"]
        boto3.client("rds", region_name=REGION).create_db_instance(
            DBInstanceIdentifier=PREFIX,
            DBInstanceClass="db.t4g.micro",
            Engine="postgres",
            AllocatedStorage=20,
            MasterUsername="dagster",
            MasterUserPassword="not-used-by-tests",
        )
        # The released image tag, as modules/dagster creates it (no release yet: "-").
        parameter = f"/dagops/{ENV}/image-tag"
        boto3.client("ssm", region_name=REGION).put_parameter(Name=parameter, Value="-", Type="String")
        bucket = f"{PREFIX}-bucket"
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )

        outputs = {
            "region": REGION,
            "environment": ENV,
            "account_id": "123456789012",
            "bucket_name": bucket,
            "ecr_repository_url": repo_url,
            "cluster_name": PREFIX,
            "service_names": services,
            "task_definition_families": families,
            "log_group_names": groups,
            "db_instance_identifier": PREFIX,
            "webserver_url": None,
            "aws_credentials_secret_arn": secret_arn,
            "image_tag_parameter": parameter,
        }
        outputs_file = tmp_path / "outputs.json"
        monkeypatch.setenv("DAGOPS_TF_OUTPUTS_FILE", str(outputs_file))
        result = Stack(root, outputs_file, outputs, subnet, sg, services)
        result.write_outputs()
        yield result


@pytest.fixture
def put_events(stack: Stack) -> Callable[[str, str, list[tuple[int, str]]], None]:
    """Write log events (timestamp ms, message) to a stream of one of the stack's log groups."""

    def put(group: str, stream: str, messages: list[tuple[int, str]]) -> None:
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": ts, "message": msg} for ts, msg in messages],
        )

    return put
