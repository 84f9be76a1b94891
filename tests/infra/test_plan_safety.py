"""What a real account would reject or regret, read from saved plans (`show -json`) and the plan graph.

live/prod is planned with an ALB behind OIDC login and with deletion protection off (the state prod is in
during the documented delete procedure), live/dev as committed. The plans run against a moto server
(the data sources: caller identity, availability zones); nothing is applied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tfharness import MOTO_ACCOUNT, REGION, Tofu, copy_tree, start_moto, write_override

LOCATIONS = ["main", "sales_ops"]
CERTIFICATE = f"arn:aws:acm:{REGION}:{MOTO_ACCOUNT}:certificate/0b7c7e1a-0000-4000-8000-000000000000"
OIDC = (
    '{issuer="https://login.example.com",authorization_endpoint="https://login.example.com/authorize",'
    'token_endpoint="https://login.example.com/token",user_info_endpoint="https://login.example.com/userinfo",'
    'client_id="dagops",client_secret="not-a-real-secret"}'
)
PROD_VARS = [
    "-var=enable_alb=true",
    f"-var=alb_certificate_arn={CERTIFICATE}",
    f"-var=alb_oidc={OIDC}",
    "-var=db_deletion_protection=false",
]


@dataclass
class Planned:
    env: str
    root: Path
    plan: dict[str, Any]
    graph: str

    def changes(self, resource_type: str) -> list[dict[str, Any]]:
        return [c for c in self.plan["resource_changes"] if c["type"] == resource_type]

    def after(self, address: str) -> dict[str, Any]:
        for change in self.plan["resource_changes"]:
            if change["address"] == address:
                return dict(change["change"]["after"])
        raise KeyError(address)


@pytest.fixture(scope="module", params=["prod", "dev"])
def planned(
    request: pytest.FixtureRequest, tofu: Tofu, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Planned]:
    env = str(request.param)
    base = tmp_path_factory.mktemp(f"plan-{env}")
    moto = start_moto()
    try:
        root = copy_tree(base, locations=LOCATIONS) / "live" / env
        write_override(root, moto.endpoint, base / "state.tfstate")
        variables = [f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]', *(PROD_VARS if env == "prod" else [])]
        tofu.run("init", "-input=false", "-no-color", cwd=root)
        tofu.run("plan", "-input=false", "-no-color", "-lock=false", "-out=tfplan", *variables, cwd=root)
        plan = json.loads(tofu.run("show", "-json", "tfplan", cwd=root).stdout)
        graph = tofu.run("graph", "-type=plan", cwd=root).stdout
        yield Planned(env, root, plan, graph)
    finally:
        moto.stop()


def _edges(dot: str) -> dict[str, set[str]]:
    """``a -> b`` edges of a DOT graph (a depends on b), by node label without "[root] " and " (expand)"."""
    edges: dict[str, set[str]] = {}
    for a, b in re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', dot, flags=re.M):
        edges.setdefault(_node(a), set()).add(_node(b))
    return edges


def _node(label: str) -> str:
    return label.removeprefix("[root] ").removesuffix(" (expand)").replace('\\"', '"')


def _depends_on(edges: dict[str, set[str]], start: str, target: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return False


# --------------------------------------------------------------------------- item 5: OIDC through the ALB


@pytest.mark.parametrize("planned", ["prod"], indirect=True)
def test_alb_with_oidc_may_reach_the_identity_provider(planned: Planned) -> None:
    rules = planned.changes("aws_vpc_security_group_egress_rule")
    alb_rules = [r for r in rules if "alb" in r["address"].split(".")[-1]]
    https_out = [
        r["change"]["after"]
        for r in alb_rules
        if r["change"]["after"].get("cidr_ipv4") == "0.0.0.0/0"
        and (r["change"]["after"]["from_port"], r["change"]["after"]["to_port"]) == (443, 443)
    ]
    assert len(https_out) == 1, f"the ALB cannot reach the OIDC provider's token endpoint: {alb_rules}"
    assert https_out[0]["ip_protocol"] == "tcp"


@pytest.mark.parametrize("planned", ["dev"], indirect=True)
def test_no_alb_no_egress_rule_for_it(planned: Planned) -> None:
    assert not [r for r in planned.changes("aws_vpc_security_group_egress_rule") if ".alb" in r["address"]]


# --------------------------------------------------------------------------- item 9: deleting prod


DB = "module.dagster.module.database.aws_db_instance.this"


def test_deleting_the_database_keeps_a_final_snapshot_and_its_backups_in_prod(planned: Planned) -> None:
    db = planned.after(DB)
    if planned.env == "prod":
        # Planned with deletion protection off, as the delete procedure does: the snapshot stays on.
        assert db["deletion_protection"] is False
        assert db["skip_final_snapshot"] is False
        assert db["final_snapshot_identifier"] == "dagops-prod-final"
        assert db["delete_automated_backups"] is False
    else:
        assert db["skip_final_snapshot"] is True
        assert db["delete_automated_backups"] is True


# --------------------------------------------------------------------------- item 10: ordering


def test_services_wait_for_capacity_providers_and_the_listener(planned: Planned) -> None:
    edges = _edges(planned.graph)
    # The plan graph has one node per resource block of a module call (all for_each instances).
    services = sorted(
        {n for n in edges if re.fullmatch(r"module\.dagster\.module\.service\.aws_ecs_service\.\w+", n)}
    )
    assert services, sorted(edges)[:20]
    association = "module.dagster.module.cluster.aws_ecs_cluster_capacity_providers.this"
    listener = "module.dagster.module.alb.aws_lb_listener.https"
    for service in services:
        assert _depends_on(edges, service, association), f"{service} does not wait for {association}"
    if planned.env == "prod":  # planned with the ALB
        for service in services:
            assert _depends_on(edges, service, listener), (
                f"{service} can be created before the listener that makes its target group usable"
            )


# --------------------------------------------------------------------------- item 11: edge cases


def test_parameter_group_name_carries_the_family_and_connections_are_not_logged(planned: Planned) -> None:
    group = planned.after("module.dagster.module.database.aws_db_parameter_group.this")
    assert group["family"] == "postgres16"
    # With create_before_destroy, a major-version upgrade creates the new group first: a name without the
    # family collides with the old group's.
    assert group["family"] in group["name"], group["name"]
    params = {p["name"]: p["value"] for p in group["parameter"]}
    assert params["log_connections"] == "0"
    assert params["rds.force_ssl"] == "1"


def test_availability_zones_exclude_opt_in_zones(planned: Planned) -> None:
    def module(config: dict[str, Any], *path: str) -> dict[str, Any]:
        for name in path:
            config = config["module_calls"][name]["module"]
        return config

    network = module(planned.plan["configuration"]["root_module"], "dagster", "network")
    zones = next(r for r in network["resources"] if r["type"] == "aws_availability_zones")
    filters = zones["expressions"]["filter"]
    assert {
        "name": {"constant_value": "opt-in-status"},
        "values": {"constant_value": ["opt-in-not-required"]},
    } in [{k: f[k] for k in ("name", "values")} for f in filters]
    assert "state" not in zones["expressions"], "an impaired zone would move the subnets"


def test_subnets_are_large_enough_for_an_alb(planned: Planned) -> None:
    subnets = planned.changes("aws_subnet")
    assert subnets
    for subnet in subnets:
        prefix = int(subnet["change"]["after"]["cidr_block"].split("/")[1])
        assert prefix <= 27, subnet["change"]["after"]["cidr_block"]


# --------------------------------------------------------------------------- item 12: code-server deployments


def test_code_servers_of_two_revisions_never_overlap(planned: Planned) -> None:
    services = [c for c in planned.changes("aws_ecs_service") if '["code-' in c["address"]]
    assert len(services) == (len(LOCATIONS) if planned.env == "prod" else 0)
    for svc in services:
        after = svc["change"]["after"]
        assert (after["deployment_minimum_healthy_percent"], after["deployment_maximum_percent"]) == (0, 100)
