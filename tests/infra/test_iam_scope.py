"""IAM policies are scoped: asserted on the policies as rendered by tofu and stored by (moto's) IAM.

live/prod (one service per component) and live/dev (the one-task stack) are applied against a moto
server in a throwaway copy of the tree, with a registry of two code locations, targeting only what
holds IAM policies (``module.dagster.module.iam`` and ``module.dagster.module.secrets``) and what those
depend on. The IAM module's database-secret input is given a fixed ARN through an override file, so the
apply needs no RDS instance (80 s of provider polling on moto); that the real wiring passes the RDS
managed secret is asserted from the source.

Then every role's and user's policies (inline and attached) are read back with boto3 and checked:
no Allow statement has ``Resource: "*"`` unless all its actions are in ``STAR_ONLY`` (actions IAM
only supports on "*", each with its reason); no wildcard action on an unscoped resource; each code
location's role touches only ``dags/<loc>/*`` and ``assets/<loc>/*`` (plus its environment's compute
logs); ``iam:PassRole`` names roles.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from tfharness import MOTO_ACCOUNT, REGION, REPO, Tofu, copy_tree, start_moto, write_override

LOCATIONS = ["main", "sales_ops"]
DB_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{MOTO_ACCOUNT}:secret:rds-db-master-AbCdEf"
DB_USER_ARN = f"arn:aws:rds-db:{REGION}:{MOTO_ACCOUNT}:dbuser:db-ABCDEFGHIJKL01234/dagster_app"

# Actions that IAM supports only with Resource "*" (no resource-level permissions), and why they are used.
STAR_ONLY = {
    "ecr:GetAuthorizationToken": "ECR login token: account-wide by design",
    "ecs:RegisterTaskDefinition": "EcsRunLauncher registers run task definitions; no resource-level support",
    "ecs:DescribeTaskDefinition": "EcsRunLauncher reads the run task definition; no resource-level support",
    "ecs:DeregisterTaskDefinition": "no resource-level support",
    "ecs:ListTaskDefinitions": "no resource-level support",
    "ec2:DescribeNetworkInterfaces": "EcsRunLauncher reads a run task's IP; Describe* take no resource",
    "ec2:DescribeSubnets": "Describe* take no resource",
    "ec2:DescribeSecurityGroups": "Describe* take no resource",
    "secretsmanager:ListSecrets": "no resource-level support (EcsRunLauncher secrets_tag lookups)",
    "secretsmanager:GetRandomPassword": "no resource-level support",
    "sts:GetCallerIdentity": "needs no permission at all",
    "cloudwatch:PutMetricData": "no resource-level support",
    "logs:DescribeLogGroups": "listing takes no resource",
}


@dataclass(frozen=True)
class Statement:
    principal: str  # role/<name>, user/<name> or group/<name>
    policy: str
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: dict[str, Any]

    def where(self) -> str:
        return f"{self.principal} policy {self.policy} statement {self.sid or '?'}"


def _list(value: Any) -> tuple[str, ...]:
    return tuple([value] if isinstance(value, str) else value or [])


def _doc(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    return dict(json.loads(urllib.parse.unquote(raw)))


def _statements(principal: str, policy: str, document: dict[str, Any]) -> list[Statement]:
    found = []
    for item in _list_statements(document):
        if item.get("Effect") != "Allow":
            continue
        assert "NotAction" not in item and "NotResource" not in item, f"{principal} {policy}: Not* in {item}"
        found.append(
            Statement(
                principal,
                policy,
                str(item.get("Sid", "")),
                _list(item.get("Action")),
                _list(item.get("Resource")),
                dict(item.get("Condition") or {}),
            )
        )
    return found


def _list_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


@dataclass
class Rendered:
    env: str
    statements: list[Statement]
    roles: dict[str, str]  # role name -> arn
    bucket_arn: str

    def of(self, principal: str) -> list[Statement]:
        return [s for s in self.statements if s.principal == principal]


def _read_back(endpoint: str) -> tuple[list[Statement], dict[str, str]]:
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    statements: list[Statement] = []
    roles = {}

    def attached(principal: str, policies: list[dict[str, Any]]) -> None:
        for item in policies:
            policy = iam.get_policy(PolicyArn=item["PolicyArn"])["Policy"]
            version = iam.get_policy_version(
                PolicyArn=item["PolicyArn"], VersionId=policy["DefaultVersionId"]
            )
            statements.extend(
                _statements(principal, policy["PolicyName"], _doc(version["PolicyVersion"]["Document"]))
            )

    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        roles[name] = role["Arn"]
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            statements += _statements(f"role/{name}", policy, _doc(doc))
        attached(f"role/{name}", iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"])
    for user in iam.list_users()["Users"]:
        name = user["UserName"]
        for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
            doc = iam.get_user_policy(UserName=name, PolicyName=policy)["PolicyDocument"]
            statements += _statements(f"user/{name}", policy, _doc(doc))
        attached(f"user/{name}", iam.list_attached_user_policies(UserName=name)["AttachedPolicies"])
    for group in iam.list_groups()["Groups"]:
        name = group["GroupName"]
        for policy in iam.list_group_policies(GroupName=name)["PolicyNames"]:
            doc = iam.get_group_policy(GroupName=name, PolicyName=policy)["PolicyDocument"]
            statements += _statements(f"group/{name}", policy, _doc(doc))
        attached(f"group/{name}", iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"])
    return statements, roles


@pytest.fixture(scope="module", params=["prod", "dev"])
def rendered(
    request: pytest.FixtureRequest, tofu: Tofu, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rendered]:
    env = str(request.param)
    tmp = tmp_path_factory.mktemp(f"iam-{env}")
    moto = start_moto()
    try:
        tree = copy_tree(tmp / "tree", LOCATIONS)
        root = tree / "live" / env
        write_override(root, moto.endpoint, tmp / "state.tfstate")
        (tree / "modules" / "dagster" / "iam_inputs_override.tf").write_text(
            f'module "iam" {{\n  db_secret_arn = "{DB_SECRET_ARN}"\n  db_user_arn   = "{DB_USER_ARN}"\n}}\n'
        )
        variables = [f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]']
        targets = ["-target=module.dagster.module.iam", "-target=module.dagster.module.secrets"]
        tofu.run("init", "-input=false", "-no-color", cwd=root)
        tofu.run("apply", "-input=false", "-no-color", "-auto-approve", *variables, *targets, cwd=root)
        statements, roles = _read_back(moto.endpoint)
        state = json.loads(tofu.run("show", "-json", cwd=root).stdout)
        buckets = [
            r["values"]["arn"]
            for module in _modules(state["values"]["root_module"])
            for r in module.get("resources", [])
            if r["type"] == "aws_s3_bucket"
        ]
        assert len(buckets) == 1, buckets
        yield Rendered(env, statements, roles, buckets[0])
    finally:
        moto.stop()


def _modules(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield module
    for child in module.get("child_modules", []):
        yield from _modules(child)


def _unscoped(resource: str) -> bool:
    """True for "*" and for ARNs whose resource part is only a wildcard (arn:aws:s3:::*, ...:role/*)."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return False
    tail = parts[5]
    return (
        tail in ("*", "")
        or bool(re.fullmatch(r"[a-z-]+/\*", tail))
        or (parts[2] == "s3" and tail.startswith("*"))
    )


# --------------------------------------------------------------------------- the checks


def test_the_policies_were_rendered(rendered: Rendered) -> None:
    principals = {s.principal for s in rendered.statements}
    names = {p.split("/", 1)[1] for p in principals}
    assert any(n.endswith("-execution") for n in names), names
    if rendered.env == "prod":
        for loc in LOCATIONS:
            assert any(n.endswith(f"-code-{loc}") for n in names), (loc, names)
    assert any(p.startswith(("user/", "group/")) for p in principals), "the S3 user's policy is missing"
    print(f"\n{rendered.env}: {len(rendered.statements)} statements on {len(principals)} principals")


def test_no_star_resource_where_one_can_be_named(rendered: Rendered) -> None:
    bad = []
    for s in rendered.statements:
        if any(_unscoped(r) for r in s.resources):
            named = [a for a in s.actions if a not in STAR_ONLY]
            if named:
                bad.append(f"{s.where()}: {named} on {list(s.resources)}")
    assert bad == [], "\n".join(bad)


def test_no_wildcard_actions_on_runtime_roles(rendered: Rendered) -> None:
    bad = [f"{s.where()}: {a}" for s in rendered.statements for a in s.actions if "*" in a]
    assert bad == [], "\n".join(bad)


def test_passrole_names_its_roles(rendered: Rendered) -> None:
    passing = [s for s in rendered.statements if "iam:PassRole" in s.actions or "iam:*" in s.actions]
    assert passing, "nobody may pass the run roles to ECS: EcsRunLauncher could not start runs"
    role_arns = set(rendered.roles.values())
    for s in passing:
        for resource in s.resources:
            assert resource in role_arns, f"{s.where()}: PassRole on {resource}, not one of the stack's roles"
        assert s.conditions.get("StringEquals", {}).get("iam:PassedToService") in (
            "ecs-tasks.amazonaws.com",
            ["ecs-tasks.amazonaws.com"],
        ), f"{s.where()}: PassRole not limited to ECS tasks"


def _s3_paths(rendered: Rendered, s: Statement) -> list[str]:
    """The key patterns a statement grants (``dags/main/*``), and ``<bucket>`` for bucket-level ones."""
    paths = []
    for resource in s.resources:
        if resource == rendered.bucket_arn:
            paths.append("<bucket>")
        elif resource.startswith(rendered.bucket_arn + "/"):
            paths.append(resource[len(rendered.bucket_arn) + 1 :])
        elif resource.startswith("arn:aws:s3:"):
            paths.append(f"<other bucket {resource}>")
    return paths


def _location_roles(rendered: Rendered) -> dict[str, str]:
    found = {}
    for name in rendered.roles:
        for loc in LOCATIONS:
            if name.endswith(f"-code-{loc}"):
                found[loc] = f"role/{name}"
    return found


@pytest.mark.parametrize("rendered", ["prod"], indirect=True)  # dev: one task, one role (single_task)
def test_each_code_location_role_touches_only_its_own_prefixes(rendered: Rendered) -> None:
    roles = _location_roles(rendered)
    assert sorted(roles) == sorted(LOCATIONS)
    logs_prefix = f"logs/{rendered.env}/"
    for loc, principal in roles.items():
        own = (f"dags/{loc}/", f"assets/{loc}/")
        statements = rendered.of(principal)
        assert statements, principal
        for s in statements:
            for action in s.actions:
                assert action.startswith(("s3:", "logs:")), f"{s.where()}: {action} outside S3 and logs"
            for path in _s3_paths(rendered, s):
                if path == "<bucket>":
                    prefixes = _list(s.conditions.get("StringLike", {}).get("s3:prefix"))
                    assert prefixes, f"{s.where()}: bucket-level access without an s3:prefix condition"
                    assert all(p.startswith(own) for p in prefixes), f"{s.where()}: lists {prefixes}"
                    assert set(s.actions) <= {"s3:ListBucket", "s3:GetBucketLocation"}, s.where()
                else:
                    allowed = path.startswith(own) or (
                        path.startswith(logs_prefix) and set(s.actions) <= {"s3:PutObject"}
                    )
                    assert allowed, (
                        f"{s.where()}: {s.actions} on {path} (only {own} and {logs_prefix} writes)"
                    )
        others = [o for o in LOCATIONS if o != loc]
        text = json.dumps([s.resources for s in statements] + [s.conditions for s in statements])
        for other in others:
            assert f"/{other}/" not in text, f"{principal} mentions location {other}"


# The one exception to "no role writes several locations' assets", by environment: dev's one-task stack
# (webserver, daemon and every code server in ONE task) has one task role, and ECS task roles are per
# task, not per container; there, code servers are kept to their own prefixes in code only
# (dagops.runtime.resources.LocationS3). See modules/iam/README.md. Runs get per-location roles in both
# shapes.
SPANNING_ROLE_EXCEPTIONS = {"prod": set(), "dev": {"dagops-dev-stack"}}


def _asset_writers(rendered: Rendered) -> dict[str, set[str]]:
    writers: dict[str, set[str]] = {}
    for s in rendered.statements:
        if not s.principal.startswith("role/") or not {"s3:PutObject", "s3:DeleteObject"} & set(s.actions):
            continue
        for path in _s3_paths(rendered, s):
            for loc in LOCATIONS:
                if path.startswith((f"assets/{loc}/", "assets/*")) or path == "*":
                    writers.setdefault(s.principal.split("/", 1)[1], set()).add(loc)
    return writers


def test_runs_of_a_location_cannot_write_another_locations_assets(rendered: Rendered) -> None:
    shared = {p: sorted(locs) for p, locs in _asset_writers(rendered).items() if len(locs) > 1}
    expected = SPANNING_ROLE_EXCEPTIONS[rendered.env]
    assert set(shared) == expected, f"roles that write several locations' assets: {shared}"
    for name in expected:  # the exception spans exactly the stack's locations, and is the stack's role
        assert shared[name] == sorted(LOCATIONS)


def _run_roles(rendered: Rendered) -> dict[str, str]:
    return {loc: name for name in rendered.roles for loc in LOCATIONS if name.endswith(f"-run-{loc}")}


def test_each_location_has_a_run_role_scoped_to_it_that_the_launcher_may_pass(rendered: Rendered) -> None:
    run_roles = _run_roles(rendered)
    assert sorted(run_roles) == sorted(LOCATIONS), rendered.roles
    writers = _asset_writers(rendered)
    for loc, name in run_roles.items():
        assert writers.get(name) == {loc}, f"{name} writes assets of {sorted(writers.get(name, set()))}"
        reads = [
            path
            for s in rendered.of(f"role/{name}")
            if "s3:GetObject" in s.actions
            for path in _s3_paths(rendered, s)
        ]
        assert sorted(reads) == sorted([f"dags/{loc}/*", f"assets/{loc}/*"]), (name, reads)
    # Whoever runs EcsRunLauncher (control role; dev: the stack role) may pass every location's run role.
    launchers = ["control"] if rendered.env == "prod" else ["control", "stack"]
    for suffix in launchers:
        principal = f"role/dagops-{rendered.env}-{suffix}"
        passable = {r for s in rendered.of(principal) if "iam:PassRole" in s.actions for r in s.resources}
        missing = {rendered.roles[n] for n in run_roles.values()} - passable
        assert not missing, f"{principal} may not pass {sorted(missing)}"


def test_the_shared_run_role_reaches_no_location_data(rendered: Rendered) -> None:
    """The run task definition's default role: compute logs only (a run without its location's role)."""
    name = f"dagops-{rendered.env}-run"
    assert name in rendered.roles
    statements = rendered.of(f"role/{name}")
    assert statements
    logs = f"logs/{rendered.env}/"
    for s in statements:
        for path in _s3_paths(rendered, s):
            if path == "<bucket>":
                prefixes = _list(s.conditions.get("StringLike", {}).get("s3:prefix"))
                assert prefixes and all(p.startswith(logs) for p in prefixes), (s.where(), prefixes)
            else:
                assert path.startswith(logs) and set(s.actions) <= {"s3:PutObject"}, (s.where(), path)


def test_roles_reach_objects_only_under_the_layout_prefixes(rendered: Rendered) -> None:
    """No role gets bucket-wide object access: dags/, assets/ or its environment's logs/ only."""
    allowed = ("dags/", "assets/", f"logs/{rendered.env}/")
    bad = []
    for s in rendered.statements:
        if not s.principal.startswith("role/"):
            continue
        for path in _s3_paths(rendered, s):
            if path == "<bucket>":
                prefixes = _list(s.conditions.get("StringLike", {}).get("s3:prefix"))
                if not prefixes or not all(p.startswith(allowed) for p in prefixes):
                    bad.append(f"{s.where()}: lists the bucket with prefixes {prefixes}")
            elif not path.startswith(allowed):
                bad.append(f"{s.where()}: {list(s.actions)} on {path}")
    assert bad == [], "\n".join(bad)


def test_only_the_db_setup_role_reads_the_master_secret(rendered: Rendered) -> None:
    readers = {
        s.principal: list(s.resources)
        for s in rendered.statements
        if any(a.startswith("secretsmanager:Get") for a in s.actions) and DB_SECRET_ARN in s.resources
    }
    # No container gets the master password (no secret injection, no task role): only the one-off setup.
    assert readers == {f"role/dagops-{rendered.env}-db-setup": [DB_SECRET_ARN]}


def test_processes_that_use_dagsters_storage_log_in_as_its_own_user_only(rendered: Rendered) -> None:
    logins: dict[str, set[str]] = {}
    for s in rendered.statements:
        if any(a in ("rds-db:connect", "rds-db:*", "*") for a in s.actions):
            logins.setdefault(s.principal, set()).update(s.resources)
    users = ["control", "run", *(f"run-{loc}" for loc in LOCATIONS)]
    if rendered.env == "dev":
        users.append("stack")
    assert logins == {f"role/dagops-{rendered.env}-{u}": {DB_USER_ARN} for u in users}


def test_the_real_wiring_passes_the_rds_managed_secret() -> None:
    """What the override replaced above: the IAM module gets the RDS instance's managed secret and user."""
    main = (REPO / "modules" / "dagster" / "main.tf").read_text()
    block = re.search(r'(?s)module "iam" \{(.*?)\n\}', main)
    assert block is not None
    assert re.search(
        r"(?m)^\s*db_secret_arn\s*=\s*module\.database\.master_user_secret_arn\s*$", block.group(1)
    )
    assert re.search(r"(?m)^\s*db_user_arn\s*=\s*local\.db_user_arn\s*$", block.group(1))
    assert re.search(
        r'db_user_arn\s*=\s*"arn:\$\{[^}]+\}:rds-db:\$\{local\.region\}:\$\{local\.account_id\}:dbuser:'
        r"\$\{module\.database\.resource_id\}/\$\{var\.db_app_username\}\"",
        main,
    )


def test_star_only_allow_list_is_used_and_explained(rendered: Rendered) -> None:
    used = {a for s in rendered.statements if any(_unscoped(r) for r in s.resources) for a in s.actions}
    print(f"\n{rendered.env}: actions on '*': {sorted(used)}")
    assert all(STAR_ONLY.get(a) for a in used)


@pytest.mark.parametrize(
    ("resource", "unscoped"),
    [
        ("*", True),
        ("arn:aws:s3:::*", True),
        ("arn:aws:iam::123456789012:role/*", True),
        ("arn:aws:ecs:ap-southeast-2:123456789012:*", True),
        ("arn:aws:s3:::dagops-prod-123456789012/dags/main/*", False),
        ("arn:aws:ecs:ap-southeast-2:123456789012:task/dagops-prod/*", False),
        ("arn:aws:iam::123456789012:role/dagops-prod-run", False),
    ],
)
def test_unscoped_resources_are_recognised(resource: str, unscoped: bool) -> None:
    assert _unscoped(resource) is unscoped


def test_the_launcher_reads_worker_logs_of_runs_only(rendered: Rendered) -> None:
    """EcsRunLauncher quotes a failed run's last log lines (logs:GetLogEvents): the run log group only."""
    launchers = ["control"] if rendered.env == "prod" else ["control", "stack"]
    run_streams = f"arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:/dagops/{rendered.env}/run:log-stream:*"
    for suffix in launchers:
        principal = f"role/dagops-{rendered.env}-{suffix}"
        reads = {r for s in rendered.of(principal) if "logs:GetLogEvents" in s.actions for r in s.resources}
        assert reads == {run_streams}, f"{principal} reads {sorted(reads)}"
    others = {s.principal for s in rendered.statements if "logs:GetLogEvents" in s.actions}
    assert others == {f"role/dagops-{rendered.env}-{suffix}" for suffix in launchers}
