"""Apply live/dev, live/prod and live/bootstrap for real against moto, read back with boto3, destroy.

Each root runs in a copy of the tree with an override file (endpoints -> moto, local state) and a
registry listing two code locations, one with '_' in its name: adding a location to the registry is
all `tofu apply` needs. The roots run in parallel, each against its own moto server (moto gives
every RDS instance the same DbiResourceId, which the provider reads instances by); most of an apply
is the provider polling, so parallel roots cost little more than one.

What moto lacks, and how it is covered instead (from the saved plan, `show -json`):
- Application Auto Scaling's ListTagsForResource: the provider calls it after creating a scalable
  target and fails, so the target and its two policies are left out of the apply (-target every
  other resource, then a refresh-only apply to record the outputs) and checked in the plan.
- ECS services: moto keeps neither deploymentConfiguration (circuit breaker, min/max percent) nor
  capacityProviderStrategy, so those come from the plan; names, desired counts, networking and
  Cloud Map registries are read back from moto.
- moto echoes neither security-group rule descriptions nor ECS managed tags, so a second plan is
  never empty here; "re-plan is a no-op" can only be checked against AWS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tfharness import (
    CONTRACT_OUTPUTS,
    MOTO_ACCOUNT,
    REGION,
    REPO,
    Tofu,
    copy_tree,
    moto_client,
    start_moto,
    write_override,
)

LOCATIONS = ["main", "sales_ops"]
GITHUB_REPOSITORY = "acme/data-platform"
RELEASED = "0123456789ab"
NOT_EMULATED = (
    "aws_appautoscaling_target",
    "aws_appautoscaling_policy",
    "aws_appautoscaling_scheduled_action",
)


@dataclass
class Deployment:
    env: str
    root: Path
    moto: Any  # a MotoServer, or the cloud-shape tests' moto container (both have .endpoint)
    tofu: Tofu
    plan: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    resource_count: int = 0
    apply_seconds: float = 0.0
    destroy_seconds: float = 0.0
    destroyed: bool = False

    extra_vars: list[str] = field(default_factory=list)

    @property
    def vars(self) -> list[str]:
        # The committed tfvars hold a placeholder account; the emulator's account is moto's.
        return [f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]', *self.extra_vars]

    def client(self, service: str) -> Any:
        # ``moto`` is a MotoServer here, or the cloud-shape tests' moto container: both have an endpoint.
        return moto_client(self.moto.endpoint, service)

    def apply(self) -> None:
        t = self.tofu
        t.run("init", "-input=false", "-no-color", cwd=self.root)
        start = time.monotonic()
        t.run("plan", "-input=false", "-no-color", "-out=tfplan", *self.vars, cwd=self.root)
        self.plan = json.loads(t.run("show", "-json", "tfplan", cwd=self.root).stdout)
        changes = self.plan["resource_changes"]
        skipped = [c for c in changes if c["type"] in NOT_EMULATED]
        if skipped:
            # Managed resources only: a data source deferred by a module-level depends_on (module.schedule)
            # would pull every resource of that module, the skipped ones too, into the targeted apply.
            targets = [
                f"-target={c['address']}"
                for c in changes
                if c["type"] not in NOT_EMULATED and c["mode"] == "managed"
            ]
            t.run("apply", "-input=false", "-no-color", "-auto-approve", *self.vars, *targets, cwd=self.root)
            # A targeted apply leaves the root outputs unset; a refresh-only apply records them.
            t.run(
                "apply",
                "-refresh-only",
                "-input=false",
                "-no-color",
                "-auto-approve",
                *self.vars,
                cwd=self.root,
            )
        else:
            t.run("apply", "-input=false", "-no-color", "tfplan", cwd=self.root)
        self.apply_seconds = time.monotonic() - start
        state = t.run("state", "list", cwd=self.root).stdout.split()
        self.resource_count = len([a for a in state if not a.startswith("data.") and ".data." not in a])
        raw = json.loads(t.run("output", "-json", cwd=self.root).stdout)
        self.outputs = {k: v["value"] for k, v in raw.items()}

    def destroy(self) -> None:
        if self.destroyed:
            return
        start = time.monotonic()
        database = "module.dagster.module.database.aws_db_instance.this"
        if self.outputs and self.env != "bootstrap" and self.plan_value(database, "deletion_protection"):
            # The way to tear down a protected database: switch protection off, then destroy.
            self.tofu.run(
                "apply", "-input=false", "-no-color", "-auto-approve", *self.vars,
                "-var=db_deletion_protection=false",
                "-target=module.dagster.module.database.aws_db_instance.this",
                cwd=self.root,
            )  # fmt: skip
        self.tofu.run("destroy", "-input=false", "-no-color", "-auto-approve", *self.vars, cwd=self.root)
        self.destroy_seconds = time.monotonic() - start
        self.destroyed = True

    def planned(self, resource_type: str) -> list[dict[str, Any]]:
        return [c for c in self.plan["resource_changes"] if c["type"] == resource_type]

    def plan_value(self, address: str, attribute: str) -> Any:
        for change in self.plan["resource_changes"]:
            if change["address"] == address:
                return change["change"]["after"].get(attribute)
        raise KeyError(address)

    def task_definition(self, key: str) -> dict[str, Any]:
        family = self.outputs["task_definition_families"][key]
        return self.client("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]

    def container(self, task_key: str, name: str) -> dict[str, Any]:
        containers = {c["name"]: c for c in self.task_definition(task_key)["containerDefinitions"]}
        return containers[name]


def environment_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


@pytest.fixture(scope="module")
def deployments(tofu: Tofu, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Deployment]]:
    base = tmp_path_factory.mktemp("emulated")
    deps: dict[str, Deployment] = {}
    try:
        for env in ("dev", "prod", "bootstrap"):
            tree = copy_tree(base / env, locations=LOCATIONS)
            root = tree / "live" / env
            # bootstrap's plan role attaches the AWS managed ReadOnlyAccess, which moto loads on request.
            moto = start_moto(managed_policies=env == "bootstrap")
            # An environment with a release (tests/infra/test_day_one.py walks the way to one): a pinned tag.
            extra = (
                [f"-var=github_repository={GITHUB_REPOSITORY}"]
                if env == "bootstrap"
                else [f"-var=image_tag={RELEASED}"]
            )
            deps[env] = Deployment(env=env, root=root, moto=moto, tofu=tofu, extra_vars=extra)
            write_override(root, moto.endpoint, base / f"{env}.tfstate")
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(d.apply) for d in deps.values()]:
                future.result()
        for d in deps.values():
            print(f"\n[emulated apply] {d.env}: {d.resource_count} resources in {d.apply_seconds:.0f} s")
        yield deps
    finally:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda d: _quiet_destroy(d), deps.values()))
        for d in deps.values():
            d.moto.stop()


def _quiet_destroy(d: Deployment) -> None:
    try:
        d.destroy()
    except AssertionError as exc:  # the last test reports destroy failures; teardown only cleans up
        print(f"[emulated apply] {d.env}: destroy during teardown failed: {exc}")


@pytest.fixture(params=["dev", "prod"])
def dep(request: pytest.FixtureRequest, deployments: dict[str, Deployment]) -> Deployment:
    return deployments[request.param]


# ---------------------------------------------------------------------------------------------------------


def test_outputs_are_the_contract(dep: Deployment) -> None:
    out = dep.outputs
    # A null output (webserver_url without an ALB) is left out of `output -json`; readers get None.
    assert set(out) >= CONTRACT_OUTPUTS - {"webserver_url"}
    assert out["environment"] == dep.env
    assert out["region"] == REGION
    assert out["account_id"] == MOTO_ACCOUNT
    assert out["aws_access_key_id"] and out["aws_secret_access_key"]
    assert out.get("webserver_url") is None  # no ALB by default
    keys = {"webserver", "daemon", "run", "code-main", "code-sales_ops"}
    assert set(out["log_group_names"]) == keys
    if dep.env == "dev":
        assert out["service_names"] == {"stack": "dagops-dev-stack"}
        assert set(out["task_definition_families"]) == {"stack", "run"}
    else:
        assert set(out["service_names"]) == {"webserver", "daemon", "code-main", "code-sales_ops"}
        assert set(out["task_definition_families"]) == {
            "webserver",
            "daemon",
            "code-main",
            "code-sales_ops",
            "run",
        }


def test_sensitive_outputs_are_marked_sensitive(dep: Deployment) -> None:
    raw = json.loads(dep.tofu.run("output", "-json", cwd=dep.root).stdout)
    for name in ("aws_access_key_id", "aws_secret_access_key"):
        assert raw[name]["sensitive"] is True
    assert raw["bucket_name"]["sensitive"] is False
    shown = dep.tofu.run("output", "-no-color", cwd=dep.root).stdout
    assert dep.outputs["aws_secret_access_key"] not in shown


def test_services_exist_in_public_subnets_with_the_tasks_security_group(dep: Deployment) -> None:
    ecs = dep.client("ecs")
    names = list(dep.outputs["service_names"].values())
    services = ecs.describe_services(cluster=dep.outputs["cluster_name"], services=names)["services"]
    assert sorted(s["serviceName"] for s in services) == sorted(names)
    for svc in services:
        network = svc["networkConfiguration"]["awsvpcConfiguration"]
        assert network["assignPublicIp"] == "ENABLED"
        assert sorted(network["subnets"]) == sorted(dep.outputs["subnet_ids"])
        assert network["securityGroups"] == [dep.outputs["tasks_security_group_id"]]
        assert svc["desiredCount"] == 1


def test_services_roll_back_failed_deployments_from_the_plan(dep: Deployment) -> None:
    # moto does not keep deploymentConfiguration or capacityProviderStrategy: checked in the plan.
    services = dep.planned("aws_ecs_service")
    assert len(services) == len(dep.outputs["service_names"])
    for svc in services:
        after = svc["change"]["after"]
        assert after["deployment_circuit_breaker"] == [{"enable": True, "rollback": True}]
        provider = "FARGATE_SPOT" if dep.env == "dev" else "FARGATE"
        assert [p["capacity_provider"] for p in after["capacity_provider_strategy"]] == [provider]


def test_daemon_is_exactly_one_and_never_two_at_once(dep: Deployment) -> None:
    key = "stack" if dep.env == "dev" else "daemon"
    ecs = dep.client("ecs")
    name = dep.outputs["service_names"][key]
    svc = ecs.describe_services(cluster=dep.outputs["cluster_name"], services=[name])["services"][0]
    assert svc["desiredCount"] == 1
    address = f'module.dagster.module.service["{key}"].aws_ecs_service.fixed[0]'
    assert dep.plan_value(address, "desired_count") == 1
    assert dep.plan_value(address, "deployment_maximum_percent") == 100
    assert dep.plan_value(address, "deployment_minimum_healthy_percent") == 0
    # Only the webserver's service is the autoscaled kind.
    autoscaled = [c["address"] for c in dep.planned("aws_ecs_service") if ".autoscaled[" in c["address"]]
    expected = (
        []
        if dep.env == "dev"
        else ['module.dagster.module.service["webserver"].aws_ecs_service.autoscaled[0]']
    )
    assert autoscaled == expected


def test_task_definitions_are_arm64_with_configured_sizes(dep: Deployment) -> None:
    sizes = {"run": ("256", "512")}
    if dep.env == "dev":
        sizes["stack"] = ("512", "1024")
    else:
        sizes.update({k: ("256", "512") for k in ("webserver", "daemon", "code-main", "code-sales_ops")})
    assert set(sizes) == set(dep.outputs["task_definition_families"])
    for key, (cpu, memory) in sizes.items():
        td = dep.task_definition(key)
        assert td["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}, key
        assert (td["cpu"], td["memory"]) == (cpu, memory), key
        assert td["requiresCompatibilities"] == ["FARGATE"]
        assert td["networkMode"] == "awsvpc"
        assert td["executionRoleArn"] != td.get("taskRoleArn")


def test_containers_follow_the_container_contract(dep: Deployment) -> None:
    bucket = dep.outputs["bucket_name"]
    rds = dep.client("rds").describe_db_instances(DBInstanceIdentifier=dep.outputs["db_instance_identifier"])
    secret_arn = rds["DBInstances"][0]["MasterUserSecret"]["SecretArn"]
    task_of = (lambda _name: "stack") if dep.env == "dev" else (lambda name: name)
    ns = f"{dep.env}.dagops.internal"
    expected_locations = (
        "main=localhost:4000,sales_ops=localhost:4001"
        if dep.env == "dev"
        else f"main=main.{ns}:4000,sales_ops=sales-ops.{ns}:4000"
    )
    images = set()
    for role in ("webserver", "daemon"):
        c = dep.container(task_of(role), role)
        images.add(c["image"])
        env = environment_of(c)
        assert c["command"] == [role]
        assert env["DAGSTER_S3_BUCKET"] == bucket
        assert env["DAGOPS_ENV"] == dep.env
        assert env["DAGOPS_CODE_LOCATIONS"] == expected_locations
        assert env["DAGOPS_RUN_TASK_DEFINITION"] == dep.outputs["task_definition_families"]["run"]
        assert env["DAGOPS_RUN_SUBNETS"] == ",".join(dep.outputs["subnet_ids"])
        assert env["DAGOPS_RUN_SECURITY_GROUPS"] == dep.outputs["runs_security_group_id"]
        assert env["DAGOPS_RUN_CAPACITY_PROVIDER"] == ("FARGATE_SPOT" if dep.env == "dev" else "FARGATE")
        assert env["DAGOPS_LOG_GROUP_RUN"] == dep.outputs["log_group_names"]["run"]
        assert env["DAGSTER_PG_HOST"] == rds["DBInstances"][0]["Endpoint"]["Address"]
        assert {k for k in env if k.startswith("DAGSTER_PG_")} == {
            "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_AUTH",
        }  # fmt: skip
        # Dagster's own role with IAM tokens: no container gets the master password.
        assert (env["DAGSTER_PG_USERNAME"], env["DAGSTER_PG_AUTH"]) == ("dagster_app", "iam")
        assert not c.get("secrets") and secret_arn not in json.dumps(c)
        assert c["logConfiguration"]["options"]["awslogs-group"] == dep.outputs["log_group_names"][role]
    for port, location in enumerate(LOCATIONS):
        key = f"code-{location}"
        c = dep.container(task_of(key), key)
        images.add(c["image"])
        env = environment_of(c)
        assert c["command"] == ["code-location"]
        assert env["DAGOPS_LOCATION"] == location
        assert env["DAGSTER_S3_BUCKET"] == bucket
        assert env["DAGOPS_GRPC_PORT"] == str(4000 + port if dep.env == "dev" else 4000)
        run_role = f"arn:aws:iam::{MOTO_ACCOUNT}:role/dagops-{dep.env}-run-{location}"
        assert env["DAGOPS_RUN_TASK_ROLE_ARN"] == run_role
        assert "DAGSTER_PG_PASSWORD" not in str(c.get("secrets"))  # code servers never see the database
        assert c["logConfiguration"]["options"]["awslogs-group"] == dep.outputs["log_group_names"][key]
    run = dep.container("run", "run")
    images.add(run["image"])
    assert environment_of(run)["DAGSTER_S3_BUCKET"] == bucket
    assert not run.get("secrets") and secret_arn not in json.dumps(run)
    assert environment_of(run)["DAGSTER_PG_AUTH"] == "iam"
    assert images == {f"{dep.outputs['ecr_repository_url']}:{RELEASED}"}  # one image for everything


HEALTH_CHECKS = json.loads((REPO / "modules" / "dagster" / "health_checks.json").read_text())


def test_every_service_container_checks_its_own_health(dep: Deployment) -> None:
    """Without an ALB nothing else notices a hung webserver or daemon: each container's own check does."""
    task_of = (lambda _name: "stack") if dep.env == "dev" else (lambda name: name)
    ports = {"webserver": 3000, **{f"code-{loc}": (4000 + i if dep.env == "dev" else 4000)
                                   for i, loc in enumerate(LOCATIONS)}}  # fmt: skip
    for name in ["webserver", "daemon", *(f"code-{loc}" for loc in LOCATIONS)]:
        role = "code-location" if name.startswith("code-") else name
        expected = HEALTH_CHECKS[role]
        check = dep.container(task_of(name), name)["healthCheck"]
        command = [a.replace("{port}", str(ports.get(name))) for a in expected["command"]]
        assert check["command"] == command, name
        for key in ("interval", "timeout", "retries", "startPeriod"):
            assert check[key] == expected[key], (name, key)
    daemon = environment_of(dep.container(task_of("daemon"), "daemon"))
    assert daemon["DAGSTER_DAEMON_HEARTBEAT_TOLERANCE"] == "300"
    # A run is a one-off task that no service replaces; Dagster's run monitoring handles hung runs.
    assert "healthCheck" not in dep.container("run", "run")


def test_autoscaling_only_on_the_webserver_from_the_plan(dep: Deployment) -> None:
    # moto lacks Application Auto Scaling's ListTagsForResource: checked from the plan, not from moto.
    targets = dep.planned("aws_appautoscaling_target")
    policies = dep.planned("aws_appautoscaling_policy")
    if dep.env == "dev":
        assert targets == [] and policies == []  # the one-task stack holds the daemon: never autoscaled
        return
    assert [t["address"] for t in targets] == [
        'module.dagster.module.service["webserver"].aws_appautoscaling_target.this[0]'
    ]
    target = targets[0]["change"]["after"]
    assert (target["min_capacity"], target["max_capacity"]) == (1, 2)
    assert target["resource_id"] == "service/dagops-prod/dagops-prod-webserver"
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    tracked = {
        p["change"]["after"]["target_tracking_scaling_policy_configuration"][0][
            "predefined_metric_specification"
        ][0]["predefined_metric_type"]: p["change"]["after"]["target_tracking_scaling_policy_configuration"][
            0
        ]["target_value"]
        for p in policies
    }
    assert tracked == {"ECSServiceAverageCPUUtilization": 70, "ECSServiceAverageMemoryUtilization": 80}


def test_bucket_is_private_encrypted_versioned_tls_only(dep: Deployment) -> None:
    s3 = dep.client("s3")
    bucket = dep.outputs["bucket_name"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
    )
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    logs_rule = [r for r in lifecycle if r.get("Filter", {}).get("Prefix") == "logs/"]
    assert logs_rule and logs_rule[0]["Expiration"]["Days"] == 30


def test_database_is_private_small_and_reachable_only_from_tasks(dep: Deployment) -> None:
    db = dep.client("rds").describe_db_instances(DBInstanceIdentifier=dep.outputs["db_instance_identifier"])[
        "DBInstances"
    ][0]
    assert db["PubliclyAccessible"] is False
    assert db["Engine"] == "postgres"
    assert db["DBInstanceClass"] == "db.t4g.micro"
    assert (db["AllocatedStorage"], db["StorageType"]) == (20, "gp3")
    assert db["MultiAZ"] is False
    assert db["StorageEncrypted"] is True
    assert db["MasterUserSecret"]["SecretArn"]
    assert db["DeletionProtection"] is (dep.env == "prod")
    assert db["BackupRetentionPeriod"] == (7 if dep.env == "prod" else 0)
    groups = [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]]
    ec2 = dep.client("ec2")
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": groups}])[
        "SecurityGroupRules"
    ]
    ingress = [r for r in rules if not r["IsEgress"]]
    assert ingress, "the database must admit the tasks"
    admitted = {dep.outputs["tasks_security_group_id"], dep.outputs["runs_security_group_id"]}
    assert {rule["ReferencedGroupInfo"]["GroupId"] for rule in ingress} == admitted
    for rule in ingress:
        assert (rule["FromPort"], rule["ToPort"]) == (5432, 5432)
    subnets = ec2.describe_subnets(SubnetIds=[s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"]])
    assert not set(dep.outputs["subnet_ids"]) & {s["SubnetId"] for s in subnets["Subnets"]}  # private subnets


def test_web_ui_is_allow_listed_never_open(dep: Deployment) -> None:
    ec2 = dep.client("ec2")
    vpc = ec2.describe_subnets(SubnetIds=dep.outputs["subnet_ids"])["Subnets"][0]["VpcId"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
    group_ids = [g["GroupId"] for g in groups]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": group_ids}])[
        "SecurityGroupRules"
    ]
    ingress = [r for r in rules if not r["IsEgress"]]
    assert not [r for r in ingress if r.get("CidrIpv4") == "0.0.0.0/0" or r.get("CidrIpv6") == "::/0"]
    ui = [r for r in ingress if r["FromPort"] == 3000 and r.get("CidrIpv4")]
    assert [(r["GroupId"], r["CidrIpv4"]) for r in ui] == [
        (dep.outputs["tasks_security_group_id"], "203.0.113.0/24")
    ]


def test_cloud_map_names(dep: Deployment) -> None:
    sd = dep.client("servicediscovery")
    namespaces = {n["Name"]: n["Id"] for n in sd.list_namespaces()["Namespaces"]}
    ns = f"{dep.env}.dagops.internal"
    assert ns in namespaces
    services = sd.list_services(
        Filters=[{"Name": "NAMESPACE_ID", "Values": [namespaces[ns]], "Condition": "EQ"}]
    )
    names = {s["Name"] for s in services["Services"]}
    # '_' is not allowed in DNS labels: sales_ops is found as sales-ops.<namespace>.
    assert names == (set() if dep.env == "dev" else {"webserver", "main", "sales-ops"})
    if dep.env == "prod":
        ecs = dep.client("ecs")
        svc = ecs.describe_services(
            cluster=dep.outputs["cluster_name"], services=[dep.outputs["service_names"]["code-sales_ops"]]
        )["services"][0]
        arns = {s["Id"]: s["Arn"] for s in services["Services"] if s["Name"] == "sales-ops"}
        assert [r["registryArn"] for r in svc["serviceRegistries"]] == list(arns.values())


def test_log_groups_per_service_and_code_location(dep: Deployment) -> None:
    logs = dep.client("logs")
    groups = {
        g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix="/dagops/")["logGroups"]
    }
    for key, name in dep.outputs["log_group_names"].items():
        assert name == f"/dagops/{dep.env}/{key}"
        assert groups[name]["retentionInDays"] == (7 if dep.env == "dev" else 30)


def test_ecr_repository_scans_and_expires(dep: Deployment) -> None:
    ecr = dep.client("ecr")
    name = dep.outputs["ecr_repository_url"].split("/", 1)[1]
    repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    rules = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])["rules"]
    assert {r["selection"]["tagStatus"] for r in rules} == {"untagged", "any"}


def _statements(iam: Any, role: str) -> list[dict[str, Any]]:
    statements = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        statements += doc["Statement"]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_code_location_and_location_run_roles_are_scoped_to_their_prefixes(dep: Deployment) -> None:
    iam = dep.client("iam")
    bucket_arn = f"arn:aws:s3:::{dep.outputs['bucket_name']}"
    for location, role in [(loc, f"{kind}-{loc}") for loc in LOCATIONS for kind in ("code", "run")]:
        statements = _statements(iam, f"dagops-{dep.env}-{role}")
        logins = [s for s in statements if "rds-db:connect" in _as_list(s["Action"])]
        # Runs use Dagster's storage as its own database user; code servers never reach the database.
        assert [_as_list(s["Resource"])[0].rsplit("/", 1)[-1] for s in logins] == (
            ["dagster_app"] if role.startswith("run-") else []
        )
        # A code server reads its own location's S3 event queue (modules/sync-events); in the one-task
        # stack the stack's role does, and runs never do.
        queues = [s for s in statements if any(a.startswith("sqs:") for a in _as_list(s["Action"]))]
        own_queue = f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:dagops-{dep.env}-sync-{location}"
        consumes = role.startswith("code-") and "stack" not in dep.outputs["service_names"]
        assert [r for s in queues for r in _as_list(s["Resource"])] == ([own_queue] if consumes else [])
        statements = [s for s in statements if s not in logins and s not in queues]
        resources = {r for s in statements for r in _as_list(s["Resource"])}
        assert resources == {
            bucket_arn,
            f"{bucket_arn}/dags/{location}/*",
            f"{bucket_arn}/assets/{location}/*",
            f"{bucket_arn}/logs/{dep.env}/*",
        }
        writes = {
            r for s in statements if "s3:PutObject" in _as_list(s["Action"]) for r in _as_list(s["Resource"])
        }
        assert f"{bucket_arn}/dags/{location}/*" not in writes  # code is read-only for the code server


def test_control_role_passes_only_its_own_roles(dep: Deployment) -> None:
    iam = dep.client("iam")
    statements = _statements(iam, f"dagops-{dep.env}-control")
    passing = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    passed = {r for s in passing for r in _as_list(s["Resource"])}
    account = MOTO_ACCOUNT
    assert passed == {
        f"arn:aws:iam::{account}:role/dagops-{dep.env}-execution",
        f"arn:aws:iam::{account}:role/dagops-{dep.env}-run",
        *(f"arn:aws:iam::{account}:role/dagops-{dep.env}-run-{loc}" for loc in LOCATIONS),
    }
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert {"ecs:RunTask", "ecs:DescribeTasks", "ecs:StopTask", "ecs:RegisterTaskDefinition"} <= actions
    run = next(s for s in statements if "ecs:RunTask" in _as_list(s["Action"]))
    assert _as_list(run["Resource"]) == [
        f"arn:aws:ecs:{REGION}:{account}:task-definition/{dep.outputs['task_definition_families']['run']}:*"
    ]
    # Every "*" resource is an action IAM cannot scope.
    unscopable = {
        "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ec2:DescribeNetworkInterfaces",
    }  # fmt: skip
    for s in statements:
        if "*" in _as_list(s["Resource"]):
            assert set(_as_list(s["Action"])) <= unscopable


def test_s3_only_user_key_is_in_secrets_manager(dep: Deployment) -> None:
    iam = dep.client("iam")
    user = f"dagops-{dep.env}-s3"
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == []
    groups = iam.list_groups_for_user(UserName=user)["Groups"]
    assert [g["GroupName"] for g in groups] == [f"dagops-{dep.env}-s3"]
    doc = iam.get_group_policy(GroupName=groups[0]["GroupName"], PolicyName="s3-only")["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    actions = {a for s in doc["Statement"] for a in _as_list(s["Action"])}
    assert all(a.startswith("s3:") for a in actions)
    secret = dep.client("secretsmanager").get_secret_value(SecretId=dep.outputs["aws_credentials_secret_arn"])
    value = json.loads(secret["SecretString"])
    assert value == {
        "aws_access_key_id": dep.outputs["aws_access_key_id"],
        "aws_secret_access_key": dep.outputs["aws_secret_access_key"],
    }


def _doc(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


def test_bootstrap_state_bucket(deployments: dict[str, Deployment]) -> None:
    boot = deployments["bootstrap"]
    s3 = boot.client("s3")
    bucket = boot.outputs["state_bucket"]
    assert bucket == f"dagops-tfstate-{MOTO_ACCOUNT}"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = _doc(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_bootstrap_github_roles_trust_only_the_repository(deployments: dict[str, Deployment]) -> None:
    boot = deployments["bootstrap"]
    iam = boot.client("iam")
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    assert providers == [f"arn:aws:iam::{MOTO_ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"]
    deploy_roles = boot.outputs["deploy_role_arns"]
    assert sorted(deploy_roles) == ["dev", "prod"]  # one deploy role per environment
    subjects = {}
    for key, arn in [*deploy_roles.items(), ("plan", boot.outputs["plan_role_arn"])]:
        role = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]
        statement = _doc(role["AssumeRolePolicyDocument"])["Statement"][0]
        assert statement["Principal"] == {"Federated": providers[0]}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"]["StringEquals"] == {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
        }
        sub = statement["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"]
        subjects[key] = sorted(_as_list(sub))
    repo = GITHUB_REPOSITORY
    # A job of the unprotected dev environment cannot get prod's role, nor can a job outside any environment.
    assert subjects == {
        "dev": [f"repo:{repo}:environment:dev"],
        "prod": [f"repo:{repo}:environment:prod"],
        "plan": [f"repo:{repo}:pull_request"],
    }
    attached = iam.list_attached_role_policies(RoleName="dagops-github-plan")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["ReadOnlyAccess"]


def _policy(iam: Any, role: str, name: str) -> list[dict[str, Any]]:
    return list(_doc(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])["Statement"])


def test_each_deploy_role_manages_only_its_environment_and_never_the_github_roles(
    deployments: dict[str, Deployment],
) -> None:
    boot = deployments["bootstrap"]
    iam = boot.client("iam")
    account = MOTO_ACCOUNT
    state = f"arn:aws:s3:::{boot.outputs['state_bucket']}"
    for env, arn in boot.outputs["deploy_role_arns"].items():
        role = arn.rsplit("/", 1)[1]
        assert role == f"dagops-github-deploy-{env}"
        statements = _policy(iam, role, "deploy")
        allows = [s for s in statements if s.get("Effect", "Allow") == "Allow"]
        by_sid = {s["Sid"]: s for s in statements if "Sid" in s}
        # IAM and buckets: this environment's names only.
        assert {r.split(":", 5)[5].split("/", 1)[1] for r in _as_list(by_sid["ProjectIam"]["Resource"])} == {
            f"dagops-{env}-*"
        }
        assert _as_list(by_sid["ProjectBuckets"]["Resource"]) == [f"arn:aws:s3:::dagops-{env}-*"]
        # State: this environment's key only.
        state_objects = {r for s in allows for r in _as_list(s["Resource"]) if r.startswith(f"{state}/")}
        assert state_objects == {f"{state}/dagops/{env}/*"}
        # Secrets: this environment's names, plus creating (never reading) the RDS-managed one.
        secret_grants = {
            r: sorted(_as_list(s["Action"]))
            for s in allows
            for r in _as_list(s["Resource"])
            if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"])) and r != "*"
        }
        assert secret_grants == {
            f"arn:aws:secretsmanager:*:{account}:secret:dagops-{env}/*": ["secretsmanager:*"],
            f"arn:aws:secretsmanager:*:{account}:secret:rds!*": [
                "secretsmanager:CreateSecret", "secretsmanager:DescribeSecret", "secretsmanager:TagResource",
            ],
        }  # fmt: skip
        unscoped = {a for s in allows if "*" in _as_list(s["Resource"]) for a in _as_list(s["Action"])}
        assert not {a for a in unscoped if a.startswith("secretsmanager:")} - {
            "secretsmanager:GetRandomPassword", "secretsmanager:ListSecrets",
        }  # fmt: skip
        # No IAM write on the GitHub roles (its own included) or the OIDC provider: an explicit deny.
        deny = by_sid["NoWriteOnTheGitHubRoles"]
        assert deny["Effect"] == "Deny"
        assert {"iam:Put*", "iam:Attach*", "iam:Update*", "iam:Create*", "iam:Delete*"} <= set(deny["Action"])
        denied = set(_as_list(deny["Resource"]))
        assert f"arn:aws:iam::{account}:role/dagops-github-deploy-*" in denied
        assert arn.replace(role, "dagops-github-deploy-*") in denied
        assert f"arn:aws:iam::{account}:role/dagops-github-plan" in denied


def test_pull_request_role_reads_neither_the_state_nor_a_secret(deployments: dict[str, Deployment]) -> None:
    boot = deployments["bootstrap"]
    iam = boot.client("iam")
    state = f"arn:aws:s3:::{boot.outputs['state_bucket']}"
    statements = _policy(iam, "dagops-github-plan", "plan")
    allows = [s for s in statements if s.get("Effect", "Allow") == "Allow"]
    assert not [s for s in allows if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))]
    assert not [s for s in allows if any(r.startswith(state) for r in _as_list(s["Resource"]))]
    # ReadOnlyAccess (attached) allows s3:Get* on every bucket and is no help here: explicit denies win.
    denies = [s for s in statements if s.get("Effect") == "Deny"]
    assert any("s3:*" in _as_list(s["Action"]) and f"{state}/*" in _as_list(s["Resource"]) for s in denies), (
        "the plan role can read the state, which holds the S3 user's secret key"
    )
    assert any(
        "secretsmanager:GetSecretValue" in _as_list(s["Action"]) and _as_list(s["Resource"]) == ["*"]
        for s in denies
    )


def test_destroy_removes_everything(deployments: dict[str, Deployment]) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(d.destroy) for d in deployments.values()]:
            future.result()
    for d in deployments.values():
        print(f"\n[emulated destroy] {d.env}: {d.destroy_seconds:.0f} s")
        assert d.client("s3").list_buckets()["Buckets"] == []
        assert d.tofu.run("state", "list", cwd=d.root, check=False).stdout.split() == []
        if d.env == "bootstrap":
            assert d.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
            continue
        ecs = d.client("ecs")
        clusters = ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"]
        assert {c["status"] for c in clusters} <= {"INACTIVE"}  # moto keeps deleted clusters as INACTIVE
        assert d.client("rds").describe_db_instances()["DBInstances"] == []
        assert d.client("logs").describe_log_groups(logGroupNamePrefix="/dagops/")["logGroups"] == []
        assert not [v for v in d.client("ec2").describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
