"""dagops.runtime.ecs_run_launcher: a run is started with its code location's task role, under moto's ECS.

A run whose code origin carries the container context the code server sets (``{"ecs": {"task_role_arn":
ARN}}``) is launched for real (``launch_run``): the RunTask call moto receives has that role as the
``taskRoleArn`` override, and the task definition is the configured `run` family, as registered. Without a
role in the context there is no override (the definition's default role, which reaches no location data).
A job's tags cannot pick another role. dagster-aws's own EcsRunLauncher is run on the same run to show
why the subclass exists: it drops the role.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from dagster._core.code_pointer import FileCodePointer
from dagster._core.definitions.reconstruct import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.instance import DagsterInstance
from dagster._core.launcher import LaunchRunContext
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.test_utils import instance_for_test
from dagster_aws.ecs import EcsRunLauncher
from moto import mock_aws
from moto.ec2.models.elastic_network_interfaces import NetworkInterface

from dagops.runtime.ecs_run_launcher import LocationRoleEcsRunLauncher
from dagops.runtime.entrypoint import render_instance

REGION = "ap-southeast-2"
MAIN_ROLE = "arn:aws:iam::123456789012:role/dagops-prod-run-main"
OTHER_ROLE = "arn:aws:iam::123456789012:role/dagops-prod-run-sales_ops"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("RUN_TASK_RETRIES", "0")
    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        # moto 5.2.5's RunTask reads an ENI attribute its EC2 model does not set: give it one.
        monkeypatch.setattr(NetworkInterface, "private_dns_name", "ip-10-0-1-5.internal", raising=False)
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="run", Description="runs", VpcId=vpc)["GroupId"]
        monkeypatch.setenv("TEST_RUN_NETWORK", json.dumps({"subnets": [subnet], "securityGroups": [group]}))
        ecs.create_cluster(clusterName="dagops-prod")
        ecs.register_task_definition(
            family="dagops-prod-run",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            taskRoleArn="arn:aws:iam::123456789012:role/dagops-prod-run",
            containerDefinitions=[
                {"name": "run", "image": "repo/dagops:abc1234", "essential": True, "memory": 512}
            ],
        )
        yield ecs


@pytest.fixture(scope="module")
def instance() -> Iterator[DagsterInstance]:
    # One instance for the module (creating its storage is most of a test's time): each test adds its
    # own run and reads back only that run, by id.
    with instance_for_test() as inst:
        yield inst


def _launch(
    cls: type[EcsRunLauncher],  # type: ignore[type-arg]
    instance: DagsterInstance,
    ecs: Any,
    context: dict[str, Any] | None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Launch one run of location `main` with ``cls``; the ECS task moto started."""
    launcher = cls(
        task_definition="dagops-prod-run",
        container_name="run",
        include_sidecars=False,
        secrets_tag=None,
        use_current_ecs_task_config=False,
        run_task_kwargs={
            "cluster": "dagops-prod",
            "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": json.loads(os.environ["TEST_RUN_NETWORK"])},
        },
    )
    launcher.register_instance(instance)
    origin = JobPythonOrigin(
        "numbers_job",
        RepositoryPythonOrigin(
            executable_path="/usr/bin/python",
            code_pointer=FileCodePointer("definitions.py", "defs", "/opt/dagster/code/main/current"),
            container_image="repo/dagops:abc1234",
            container_context=context,
        ),
    )
    run = instance.add_run(DagsterRun(job_name="numbers_job", job_code_origin=origin, tags=tags or {}))
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    launched = instance.get_run_by_id(run.run_id)
    assert launched is not None
    arn = launched.tags["ecs/task_arn"]
    return dict(ecs.describe_tasks(cluster="dagops-prod", tasks=[arn])["tasks"][0])


def test_a_run_gets_its_locations_role_as_the_task_role_override(aws: Any, instance: DagsterInstance) -> None:
    task = _launch(LocationRoleEcsRunLauncher, instance, aws, {"ecs": {"task_role_arn": MAIN_ROLE}})
    assert task["overrides"]["taskRoleArn"] == MAIN_ROLE
    assert task["taskDefinitionArn"].endswith(":task-definition/dagops-prod-run:1")
    assert task["overrides"]["containerOverrides"][0]["name"] == "run"


def test_dagster_aws_alone_drops_the_role_with_a_given_task_definition(
    aws: Any, instance: DagsterInstance
) -> None:
    task = _launch(EcsRunLauncher, instance, aws, {"ecs": {"task_role_arn": MAIN_ROLE}})
    assert "taskRoleArn" not in task.get("overrides", {})


def test_without_a_role_in_the_context_there_is_no_override(aws: Any, instance: DagsterInstance) -> None:
    task = _launch(LocationRoleEcsRunLauncher, instance, aws, None)
    assert "taskRoleArn" not in task.get("overrides", {})


@pytest.mark.parametrize(
    "tags",
    [
        {"ecs/task_overrides": json.dumps({"taskRoleArn": OTHER_ROLE})},
        {"ecs/run_task_kwargs": json.dumps({"overrides": {"taskRoleArn": OTHER_ROLE}})},
        {"ecs/run_task_kwargs": json.dumps({"taskDefinition": "dagops-prod-other"})},
    ],
    ids=["task_overrides", "run_task_kwargs-overrides", "run_task_kwargs-taskDefinition"],
)
def test_a_jobs_tags_cannot_pick_another_role(
    aws: Any, instance: DagsterInstance, tags: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match=r"runs of a code location get|the run launcher sets those"):
        _launch(LocationRoleEcsRunLauncher, instance, aws, {"ecs": {"task_role_arn": MAIN_ROLE}}, tags)
    assert aws.list_tasks(cluster="dagops-prod")["taskArns"] == []


# ---- runs take the environment's capacity-provider strategy, not the daemon's launch type ----

TEMPLATE = Path(__file__).resolve().parents[2] / "images" / "dagster.yaml"


@pytest.fixture
def daemon_task(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A daemon task started by a service on Fargate (launchType FARGATE), and its metadata endpoint.

    ECS answers ``$ECS_CONTAINER_METADATA_URI_V4/task`` inside a task; here a real HTTP server on
    loopback answers it for the moto task, so dagster-aws's current-task path runs unchanged.
    """
    network = json.loads(os.environ["TEST_RUN_NETWORK"])
    aws.register_task_definition(
        family="dagops-prod-daemon",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "daemon", "image": "repo/dagops:abc1234", "essential": True, "memory": 512}
        ],
    )
    task = aws.run_task(
        cluster="dagops-prod",
        taskDefinition="dagops-prod-daemon",
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {**network, "assignPublicIp": "ENABLED"}},
    )["tasks"][0]
    body = json.dumps({"Cluster": "dagops-prod", "TaskARN": task["taskArn"]}).encode()

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", f"http://127.0.0.1:{server.server_address[1]}/v4")
    try:
        yield task["taskArn"]
    finally:
        server.shutdown()
        server.server_close()


def _launcher_from_template(env: dict[str, str]) -> LocationRoleEcsRunLauncher:
    """The run launcher as images/dagster.yaml, rendered by the entrypoint under ``env``, builds it."""
    config = yaml.safe_load(render_instance(TEMPLATE.read_text(), env))["run_launcher"]["config"]
    config["task_definition"] = "dagops-prod-run"
    return LocationRoleEcsRunLauncher(**config)


def _run_task_requests(
    launcher: LocationRoleEcsRunLauncher, instance: DagsterInstance
) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []
    launcher.ecs.meta.events.register(
        "provide-client-params.ecs.RunTask", lambda params, **_: requests.append(dict(params))
    )
    launcher.register_instance(instance)
    origin = JobPythonOrigin(
        "numbers_job",
        RepositoryPythonOrigin(
            executable_path="/usr/bin/python",
            code_pointer=FileCodePointer("definitions.py", "defs", "/opt/dagster/code/main/current"),
            container_image="repo/dagops:abc1234",
            container_context={"ecs": {"task_role_arn": MAIN_ROLE}},
        ),
    )
    run = instance.add_run(DagsterRun(job_name="numbers_job", job_code_origin=origin))
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return requests


@pytest.mark.parametrize("provider", ["FARGATE_SPOT", "FARGATE"])
def test_runs_use_the_environments_capacity_provider_not_the_daemons_launch_type(
    daemon_task: str, instance: DagsterInstance, provider: str
) -> None:
    network = json.loads(os.environ["TEST_RUN_NETWORK"])
    env = {
        "DAGOPS_RUN_SUBNETS": ",".join(network["subnets"]),
        "DAGOPS_RUN_SECURITY_GROUPS": ",".join(network["securityGroups"]),
        "DAGOPS_RUN_CAPACITY_PROVIDER": provider,
    }
    requests = _run_task_requests(_launcher_from_template(env), instance)
    assert len(requests) == 1
    request = requests[0]
    assert request["cluster"] == "dagops-prod"  # from the daemon's own task
    # A launchType beside a strategy is refused by ECS, and alone it overrides the cluster's default.
    assert "launchType" not in request
    assert request["capacityProviderStrategy"] == [{"capacityProvider": provider, "weight": 1}]
    vpc = request["networkConfiguration"]["awsvpcConfiguration"]
    assert vpc["securityGroups"] == network["securityGroups"]


def test_without_a_strategy_dagster_aws_copies_the_daemons_launch_type(
    daemon_task: str, instance: DagsterInstance
) -> None:
    # Why the strategy is set: left alone, runs inherit FARGATE from the daemon, whatever the cluster says.
    network = json.loads(os.environ["TEST_RUN_NETWORK"])
    env = {
        "DAGOPS_RUN_SUBNETS": ",".join(network["subnets"]),
        "DAGOPS_RUN_SECURITY_GROUPS": ",".join(network["securityGroups"]),
    }
    request = _run_task_requests(_launcher_from_template(env), instance)[0]
    assert request["launchType"] == "FARGATE"
    assert "capacityProviderStrategy" not in request
