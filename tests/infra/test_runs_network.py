"""Runs have a security group of their own: egress to AWS APIs and the database, nothing else.

live/prod's network module is applied against moto (``-target=module.dagster.module.network``: no RDS,
seconds) in a throwaway copy of the tree, and every rule is read back with boto3. A run executes user
code: it must reach S3, ECR, CloudWatch (443) and the database (5432), and must not reach the webserver's
unauthenticated GraphQL or any code server, whose ingress admits the service tasks' group only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from tfharness import MOTO_ACCOUNT, REGION, Tofu, copy_tree, start_moto, write_override


@dataclass
class Groups:
    ids: dict[str, str]  # name suffix (tasks, runs, database) -> group id
    rules: list[dict[str, Any]]

    def of(self, name: str, egress: bool) -> list[dict[str, Any]]:
        return [r for r in self.rules if r["GroupId"] == self.ids[name] and r["IsEgress"] is egress]


@pytest.fixture(scope="module")
def groups(tofu: Tofu, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Groups]:
    tmp = tmp_path_factory.mktemp("runs-network")
    moto = start_moto()
    try:
        root = copy_tree(tmp / "tree", ["main", "sales_ops"]) / "live" / "prod"
        write_override(root, moto.endpoint, tmp / "state.tfstate")
        tofu.run("init", "-input=false", "-no-color", cwd=root)
        account = f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]'
        target = "-target=module.dagster.module.network"
        tofu.run("apply", "-input=false", "-no-color", "-auto-approve", account, target, cwd=root)
        ec2 = boto3.client(
            "ec2",
            region_name=REGION,
            endpoint_url=moto.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["dagops-prod-*"]}])
        ids = {g["GroupName"].removeprefix("dagops-prod-"): g["GroupId"] for g in found["SecurityGroups"]}
        in_groups = [{"Name": "group-id", "Values": list(ids.values())}]
        yield Groups(ids, ec2.describe_security_group_rules(Filters=in_groups)["SecurityGroupRules"])
    finally:
        moto.stop()


def _shape(rule: dict[str, Any], groups: Groups) -> tuple[str, int, int, str]:
    names = {v: k for k, v in groups.ids.items()}
    peer = rule.get("CidrIpv4") or names.get(rule.get("ReferencedGroupInfo", {}).get("GroupId", ""), "?")
    return (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], peer)


def test_runs_have_their_own_group_with_no_ingress(groups: Groups) -> None:
    assert "runs" in groups.ids and groups.ids["runs"] != groups.ids["tasks"]
    assert groups.of("runs", egress=False) == []


def test_runs_reach_only_https_and_the_database(groups: Groups) -> None:
    egress = sorted(_shape(r, groups) for r in groups.of("runs", egress=True))
    assert egress == [("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 5432, 5432, "database")]


def test_the_database_admits_the_runs_and_the_services(groups: Groups) -> None:
    ingress = sorted(_shape(r, groups) for r in groups.of("database", egress=False))
    assert ingress == [("tcp", 5432, 5432, "runs"), ("tcp", 5432, 5432, "tasks")]


def test_webserver_and_code_servers_do_not_admit_runs(groups: Groups) -> None:
    for rule in groups.of("tasks", egress=False):
        assert rule.get("ReferencedGroupInfo", {}).get("GroupId") != groups.ids["runs"], rule
        if rule.get("CidrIpv4"):  # the UI allow-list only, never the VPC the runs live in
            assert (rule["FromPort"], rule["CidrIpv4"]) == (3000, "203.0.113.0/24")
