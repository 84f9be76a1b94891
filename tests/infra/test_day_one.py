"""Day one against moto: every path converges on an image that exists, with tofu's current settings.

live/prod is applied for real (tofu + moto, the emulated-apply harness) and walked the way an
environment lives: the first apply from empty, an image push (emulated ECR: an image manifest put),
`invoke deploy`'s release (record the tag, apply), a new code location in the registry + apply, and a
cpu change + apply. After each step, every service runs the newest task definition of its family (tofu's
changes reach it), and every service's and the `run` family's newest task definition names an image tag
that is in the registry and carries the current settings and location list (DAGOPS_CODE_LOCATIONS of
webserver and daemon). Before the first release, nothing may pull an image: no task runs and there is no
run task definition.

moto does not run tasks or Application Auto Scaling, so the deploy is checked without waiting for
stability (tests/unit/aws covers the waiting) and the webserver's task count is left to the plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import tfharness
from test_emulated_apply import Deployment as Root
from test_emulated_apply import environment_of
from tfharness import MOTO_ACCOUNT, REGION, MotoServer, Tofu, copy_tree, start_moto, write_override

from dagops.errors import DagopsError
from dagops.operator.aws import Deployment
from dagops.operator.aws.ecs import deploy_image

TAG = "0123456789ab"
NS = "prod.dagops.internal"


# moto 5.2.5's RunTask (the db-setup task) reads an ENI attribute its EC2 model does not set, and sums
# container-level memory, which Fargate task definitions need not have (ours set it per task): the moto
# server of this test gets both fixed (the unit tests patch the same ENI attribute in-process).
PATCHED_MOTO = tfharness.MOTO_SCRIPT.replace(
    "server.start()",
    "from moto.ec2.models.elastic_network_interfaces import NetworkInterface\n"
    "import moto.ecs.models as ecs_models\n"
    "NetworkInterface.private_dns_name = 'ip-10-0-0-5.internal'\n"
    "ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(\n"
    "    lambda _td: {'CPU': 0, 'MEMORY': 0, 'PORTS': [], 'PORTS_UDP': []})\n"
    "server.start()",
)


def _start_patched_moto() -> MotoServer:
    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(tfharness, "MOTO_SCRIPT", PATCHED_MOTO)
        return start_moto()
    finally:
        patch.undo()


def _registry(tree: Path, locations: list[str]) -> None:
    lines = ["locations:"]
    for name in locations:
        lines += [f"- name: {name}", f"  source: code_locations/{name}", "  entry: definitions.py"]
    (tree / "code_locations" / "locations.yaml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def root(tofu: Tofu, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Root]:
    base = tmp_path_factory.mktemp("day-one")
    tree = copy_tree(base / "tree", locations=["main"])
    moto = _start_patched_moto()
    env_root = Root(env="prod", root=tree / "live" / "prod", moto=moto, tofu=tofu)
    write_override(env_root.root, moto.endpoint, base / "prod.tfstate")
    try:
        yield env_root
    finally:
        try:
            env_root.tofu.run(
                "destroy", "-input=false", "-no-color", "-auto-approve", *env_root.vars,
                "-var=db_deletion_protection=false", cwd=env_root.root, check=False,
            )  # fmt: skip
        finally:
            moto.stop()


@pytest.fixture(scope="module")
def aws_env(root: Root, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The process environment the deploy task sees: the tree as repository, moto as AWS, outputs file."""
    outputs = tmp_path_factory.mktemp("outputs") / "outputs.json"
    patch = pytest.MonkeyPatch()
    for name, value in {
        "DAGOPS_ROOT": str(root.root.parents[1]),
        "DAGOPS_TF_OUTPUTS_FILE": str(outputs),
        "AWS_ENDPOINT_URL": root.moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        patch.setenv(name, value)
    patch.delenv("AWS_PROFILE", raising=False)
    try:
        yield outputs
    finally:
        patch.undo()


def _apply(root: Root, outputs: Path, targets: Sequence[str] = ()) -> None:
    """`tofu apply` of the root as it is (what CI's infra job and `invoke infra.apply` run), or of targets."""
    if targets:
        root.tofu.run(
            "apply", "-input=false", "-no-color", "-auto-approve", *root.vars,
            *(f"-target={t}" for t in targets), cwd=root.root,
        )  # fmt: skip
    else:
        root.apply()
    raw = json.loads(root.tofu.run("output", "-json", cwd=root.root).stdout)
    outputs.write_text(json.dumps(raw))


def _family_head(ecs: Any, family: str) -> dict[str, Any]:
    return dict(ecs.describe_task_definition(taskDefinition=family)["taskDefinition"])


def _pushed(root: Root) -> set[str]:
    name = root.outputs["ecr_repository_url"].split("/", 1)[1]
    images = root.client("ecr").describe_images(repositoryName=name)["imageDetails"]
    return {f"{root.outputs['ecr_repository_url']}:{t}" for i in images for t in i.get("imageTags", [])}


def _converged(root: Root, locations: list[str], daemon_cpu: str = "256") -> dict[str, dict[str, Any]]:
    """Every service runs its family's newest revision; every newest revision names a pushed image."""
    ecs = root.client("ecs")
    families = root.outputs["task_definition_families"]
    services = root.outputs["service_names"]
    assert set(services) == {"webserver", "daemon", *(f"code-{loc}" for loc in locations)}
    described = ecs.describe_services(cluster=root.outputs["cluster_name"], services=list(services.values()))
    running = {s["serviceName"]: s for s in described["services"]}
    heads: dict[str, dict[str, Any]] = {}
    pushed = _pushed(root)
    for key, family in families.items():
        head = heads[key] = _family_head(ecs, family)
        images = {c["image"] for c in head["containerDefinitions"]}
        assert images <= pushed, f"{key}: {images} not pushed ({pushed})"
        if key in services:
            service = running[services[key]]
            assert service["taskDefinition"] == head["taskDefinitionArn"], f"{key} runs an old revision"
            if key != "webserver":  # autoscaling owns the webserver's count (not emulated)
                assert service["desiredCount"] == 1, key
    expected = ",".join(f"{loc}={loc.replace('_', '-')}.{NS}:4000" for loc in locations)
    for key in ("webserver", "daemon"):
        env = environment_of(heads[key]["containerDefinitions"][0])
        assert env["DAGOPS_CODE_LOCATIONS"] == expected, key
    assert heads["daemon"]["cpu"] == daemon_cpu
    return heads


def test_day_one(root: Root, aws_env: Path) -> None:
    outputs = aws_env
    ecs, ssm, ecr = root.client("ecs"), root.client("ssm"), root.client("ecr")

    # 1. First apply from empty: no image exists, so nothing may try to pull one.
    _apply(root, outputs)
    assert root.outputs.get("image_tag") is None
    services = ecs.describe_services(
        cluster=root.outputs["cluster_name"], services=list(root.outputs["service_names"].values())
    )["services"]
    assert {s["serviceName"]: s["desiredCount"] for s in services} == dict.fromkeys(
        root.outputs["service_names"].values(), 0
    )
    run_family = root.outputs["task_definition_families"]["run"]
    assert ecs.list_task_definitions(familyPrefix=run_family)["taskDefinitionArns"] == []

    # A tag nobody pushed is refused before anything changes.
    parameter = root.outputs["image_tag_parameter"]
    with pytest.raises(DagopsError, match=r"Image tag 'v0' is not in the ECR repository .* image\.push"):
        deploy_image(Deployment.load("prod"), "v0", apply=lambda t: _apply(root, outputs, t), wait=False)
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == "-"

    # 2. The image push (what `invoke image.push` does through docker): a manifest under the tag.
    repository = root.outputs["ecr_repository_url"].split("/", 1)[1]
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                           "digest": "sha256:" + "1" * 64}, "layers": []}  # fmt: skip
    ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=TAG)

    # 3. The deploy: record the tag, apply, every service and the run family on the pushed image.
    # The first release creates Dagster's database role (the db-setup task, from the run task definition)
    # before any service starts.
    said: list[str] = []
    setup_saw: list[dict[str, Any]] = []

    def echo(line: str) -> None:
        said.append(line)
        if line.startswith("Started the database setup task"):
            cluster = root.outputs["cluster_name"]
            arn = ecs.list_tasks(cluster=cluster, startedBy="dagops-db-setup")["taskArns"][0]
            setup_saw.append(ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0])
            names = list(root.outputs["service_names"].values())
            counts = ecs.describe_services(cluster=cluster, services=names)["services"]
            assert {s["desiredCount"] for s in counts} == {0}, "a service started before the role existed"
            ecs.stop_task(cluster=cluster, task=arn)  # its container exits (moto: exit code 0)

    deploy_image(
        Deployment.load("prod"), TAG, apply=lambda t: _apply(root, outputs, t), echo=echo, wait=False
    )
    assert any(TAG in line for line in said)
    assert len(setup_saw) == 1
    overrides = setup_saw[0]["overrides"]
    assert overrides["taskRoleArn"] == f"arn:aws:iam::{MOTO_ACCOUNT}:role/dagops-prod-db-setup"
    assert overrides["containerOverrides"][0]["command"] == ["db-setup"]
    assert setup_saw[0]["taskDefinitionArn"].split("/")[-1].startswith("dagops-prod-run:")
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == TAG
    assert root.outputs["image_tag"] == TAG
    heads = _converged(root, ["main"])
    assert {c["image"] for h in heads.values() for c in h["containerDefinitions"]} == {
        f"{root.outputs['ecr_repository_url']}:{TAG}"
    }

    # 4. `invoke repo.add` + apply: the new location's service runs the released image, and the
    # webserver and daemon learn about it.
    _registry(root.root.parents[1], ["main", "sales_ops"])
    _apply(root, outputs)
    _converged(root, ["main", "sales_ops"])

    # 5. A cpu change + apply reaches the running daemon, with the released image kept.
    root.extra_vars = ["-var=daemon_cpu=512", "-var=daemon_memory=1024"]
    _apply(root, outputs)
    heads = _converged(root, ["main", "sales_ops"], daemon_cpu="512")
    assert heads["daemon"]["containerDefinitions"][0]["image"].endswith(f":{TAG}")
