"""dagops.operator.ecs_local's translation of ECS task definitions (the containers themselves run in
tests/containers/test_cloud_shape.py)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dagops.errors import DagopsError
from dagops.operator.ecs_local import definition, secrets, service, task

REGION = "ap-southeast-2"


def _td(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "taskDefinitionArn": f"arn:aws:ecs:{REGION}:123456789012:task-definition/x:1",
        "containerDefinitions": list(containers),
    }


def _c(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "repo/app:latest", **extra}


def test_container_definition_maps_onto_docker_run() -> None:
    spec = definition.container_specs(
        _td(
            _c(
                "web",
                entryPoint=["tini", "--", "app"],
                command=["serve", "--port", "3000"],
                environment=[{"name": "A", "value": "1"}],
                secrets=[{"name": "PW", "valueFrom": "arn:aws:ssm:ap-southeast-2:1:parameter/pw"}],
                portMappings=[{"containerPort": 3000, "protocol": "tcp"}],
                healthCheck={"command": ["CMD", "curl", "-f", "http://localhost:3000/ok y"], "interval": 10},
                stopTimeout=30,
                linuxParameters={"initProcessEnabled": True},
                user="10001",
                workingDirectory="/srv",
            )
        )
    )[0]
    assert spec.ports == [3000] and spec.environment == {"A": "1"}
    argv = task.run_argv(spec, "t-web", "t-pause", "local:img", ["A", "PW"])
    assert argv[:6] == ["run", "--detach", "--name", "t-web", "--network", "container:t-pause"]
    assert "--init" in argv and "--stop-timeout=30" in argv
    assert argv[argv.index("--user") + 1] == "10001" and argv[argv.index("--workdir") + 1] == "/srv"
    # Values never on argv: only the names, read from the client's environment.
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--env"] == ["A", "PW"]
    # ECS's defaults fill what the definition leaves out; CMD's words are quoted for Docker's shell.
    assert "--health-cmd=curl -f 'http://localhost:3000/ok y'" in argv
    assert {"--health-interval=10s", "--health-timeout=5s", "--health-retries=3"} <= set(argv)
    # entryPoint's first word is Docker's --entrypoint; the rest lead the command.
    assert argv[argv.index("--entrypoint") + 1] == "tini"
    assert argv[-6:] == ["local:img", "--", "app", "serve", "--port", "3000"]


def test_start_order_puts_dependencies_first() -> None:
    specs = definition.container_specs(
        _td(
            _c("web", dependsOn=[{"containerName": "code", "condition": "HEALTHY"}]),
            _c("code", healthCheck={"command": ["CMD-SHELL", "true"]}, dependsOn=[
                {"containerName": "init", "condition": "SUCCESS"},
            ]),
            _c("init", essential=False),
        )
    )  # fmt: skip
    assert [s.name for s in definition.start_order(specs)] == ["init", "code", "web"]


def test_container_overrides_as_run_task_applies_them() -> None:
    """RunTask's containerOverrides: the command replaces, environment entries add to and win over."""
    td = _td(
        _c("run", command=["serve"], environment=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        _c("side", command=["tail"]),
    )
    run, side = definition.container_specs(
        td, [{"name": "run", "command": ["db-setup"], "environment": [{"name": "B", "value": "3"}]}]
    )
    assert run.command == ["db-setup"] and run.environment == {"A": "1", "B": "3"}
    assert side.command == ["tail"]
    # An environment-only override keeps the definition's command.
    (only_env,) = definition.container_specs(
        _td(_c("run", command=["serve"])), [{"name": "run", "environment": [{"name": "X", "value": "y"}]}]
    )
    assert only_env.command == ["serve"] and only_env.environment == {"X": "y"}
    with pytest.raises(DagopsError, match="not in the task"):
        definition.container_specs(td, [{"name": "nope", "command": ["x"]}])


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        ([_c("a", dependsOn=[{"containerName": "b", "condition": "START"}]), _c("b", dependsOn=[
            {"containerName": "a", "condition": "START"}])], "cycle"),
        ([_c("a", dependsOn=[{"containerName": "b", "condition": "HEALTHY"}]), _c("b")], "no health check"),
        ([_c("a", dependsOn=[{"containerName": "b", "condition": "SUCCESS"}]), _c("b")], "essential"),
        ([_c("a", dependsOn=[{"containerName": "z", "condition": "START"}])], "not in the task"),
        ([_c("a", dependsOn=[{"containerName": "a", "condition": "READY"}])], "unknown dependsOn"),
        ([_c("a", essential=False)], "at least one essential"),
        ([_c("a", portMappings=[{"containerPort": 80}]), _c("b", portMappings=[
            {"containerPort": 80}])], "port"),
        ([_c("a"), _c("a")], "twice"),
    ],
)  # fmt: skip
def test_invalid_task_definitions_are_refused_as_ecs_refuses_them(
    containers: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(DagopsError, match=message):
        definition.container_specs(_td(*containers))


def test_secret_reference_forms() -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:rds!db-1a2b-AbCdEf"
    assert secrets.parse_secret_reference(arn) == (arn, "", "", "")
    assert secrets.parse_secret_reference(f"{arn}:password::") == (arn, "password", "", "")
    assert secrets.parse_secret_reference(f"{arn}:password:AWSPREVIOUS:") == (
        arn,
        "password",
        "AWSPREVIOUS",
        "",
    )
    with pytest.raises(DagopsError, match="not a Secrets Manager"):
        secrets.parse_secret_reference(f"arn:aws:ssm:{REGION}:1:parameter/x")


@mock_aws
def test_secrets_resolve_as_the_ecs_agent_resolves_them() -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    arn = sm.create_secret(Name="db", SecretString=json.dumps({"username": "u", "password": "p:w"}))["ARN"]
    plain = sm.create_secret(Name="token", SecretString="t0ken")["ARN"]
    ssm.put_parameter(Name="/app/key", Value="k", Type="SecureString")

    def client(service: str) -> Any:
        return {"secretsmanager": sm, "ssm": ssm}[service]

    assert secrets.resolve_secret(f"{arn}:password::", client) == "p:w"
    assert secrets.resolve_secret(arn, client) == json.dumps({"username": "u", "password": "p:w"})
    assert secrets.resolve_secret(plain, client) == "t0ken"
    assert secrets.resolve_secret(f"arn:aws:ssm:{REGION}:123456789012:parameter/app/key", client) == "k"
    assert secrets.resolve_secret("/app/key", client) == "k"
    with pytest.raises(DagopsError, match="no JSON key 'pass'"):
        secrets.resolve_secret(f"{arn}:pass::", client)
    with pytest.raises(DagopsError, match="not JSON"):
        secrets.resolve_secret(f"{plain}:password::", client)


@mock_aws
def test_services_are_read_back_with_their_cloud_map_names() -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    sd = boto3.client("servicediscovery", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    sd.create_private_dns_namespace(Name="prod.dagops.internal", Vpc=vpc)
    namespace = sd.list_namespaces()["Namespaces"][0]["Id"]
    registry = sd.create_service(
        Name="sales-ops",
        DnsConfig={"NamespaceId": namespace, "DnsRecords": [{"Type": "A", "TTL": 10}]},
    )["Service"]["Arn"]
    ecs.create_cluster(clusterName="c")
    family = ecs.register_task_definition(
        family="code", containerDefinitions=[_c("code-sales_ops", memory=512)], networkMode="awsvpc"
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="c", serviceName="code", taskDefinition=family, serviceRegistries=[
        {"registryArn": registry}])  # fmt: skip
    ecs.create_service(cluster="c", serviceName="plain", taskDefinition=family)

    def client(service: str) -> Any:
        return {"ecs": ecs, "servicediscovery": sd}[service]

    found = {t.service: t for t in service.service_tasks(client, "c", ["code", "plain"])}
    assert found["code"].aliases == ["sales-ops.prod.dagops.internal"]
    assert found["plain"].aliases == []
    assert found["code"].task_definition["containerDefinitions"][0]["name"] == "code-sales_ops"
    with pytest.raises(DagopsError, match="does not know"):
        service.service_tasks(client, "c", ["missing"])
