"""invoke deploy / deploy-all against a moto ECS: new revisions with the new image, services updated."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_stack import REGION, Stack
from invoke import Context
from invoke.exceptions import Exit

from dagops.errors import DagopsError
from dagops.names import validate_image_tag
from dagops.operator import infra
from dagops.operator.aws import Deployment
from dagops.operator.aws.ecs import assess, deploy_image
from dagops.operator.tasks import deploy as deploy_tasks


def _ecs() -> Any:
    return boto3.client("ecs", region_name=REGION)


def _service(stack: Stack, key: str) -> dict[str, Any]:
    return _ecs().describe_services(cluster=stack.outputs["cluster_name"], services=[stack.services[key]])[
        "services"
    ][0]


def _images(task_definition: str) -> list[str]:
    td = _ecs().describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    return [c["image"] for c in td["containerDefinitions"]]


def _push(stack: Stack, *tags: str) -> None:
    """What `invoke image.push` leaves in ECR: a manifest under each tag."""
    ecr = boto3.client("ecr", region_name=REGION)
    for tag in tags:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{tag.encode().hex():0<64}"[:71]},
            "layers": [],
        }
        ecr.put_image(repositoryName="dagops-prod", imageManifest=json.dumps(manifest), imageTag=tag)


@pytest.fixture
def applies(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """`tofu apply` as the deploy runs it, played by what the dagster module does against AWS.

    It reads the released tag from the image-tag parameter, registers each family's next revision with
    that image and points the services at it (tests/infra/test_day_one.py runs the real tofu).
    """
    calls: list[list[str]] = []

    def apply(action: str, envs: list[str], **kwargs: Any) -> None:
        calls.append([action, *envs, *(k for k, v in kwargs.items() if v)])
        ecs = _ecs()
        tag = boto3.client("ssm", region_name=REGION).get_parameter(Name="/dagops/prod/image-tag")
        image = f"{stack.outputs['ecr_repository_url']}:{tag['Parameter']['Value']}"
        for key, family in stack.outputs["task_definition_families"].items():
            head = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
            fields = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory", "runtimePlatform")
            arn = ecs.register_task_definition(
                **{f: head[f] for f in fields},
                containerDefinitions=[{**c, "image": image} for c in head["containerDefinitions"]],
            )["taskDefinition"]["taskDefinitionArn"]
            if key in stack.services:
                ecs.update_service(cluster="dagops-prod", service=stack.services[key], taskDefinition=arn)

    monkeypatch.setattr(infra, "execute", apply)
    return calls


def test_deploy_records_the_pushed_tag_applies_and_waits(
    stack: Stack, applies: list[list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _push(stack, "abc1234def56")
    deploy_tasks.release(Context(), env="prod", image_tag="abc1234def56")

    assert applies == [["apply", "prod", "yes"]]
    parameter = boto3.client("ssm", region_name=REGION).get_parameter(Name="/dagops/prod/image-tag")
    assert parameter["Parameter"]["Value"] == "abc1234def56"
    image = f"{stack.outputs['ecr_repository_url']}:abc1234def56"
    for key in stack.services:
        service = _service(stack, key)
        assert service["taskDefinition"].endswith(
            f":task-definition/{stack.outputs['task_definition_families'][key]}:2"
        )
        assert _images(service["taskDefinition"]) == [image]
    assert _images(stack.outputs["task_definition_families"]["run"]) == [image]
    out = capsys.readouterr().out
    assert "All 3 service(s) are stable." in out
    assert "dagops-prod-webserver: COMPLETED, 1/1 running" in out


def test_a_second_deploy_moves_every_service_again(stack: Stack, applies: list[list[str]]) -> None:
    _push(stack, "v1", "v2")
    dep = Deployment.load("prod")
    apply = lambda targets: infra.execute("apply", ["prod"], yes=True)  # noqa: E731
    first = deploy_image(dep, "v1", apply=apply, echo=lambda _: None, poll=0)
    second = deploy_image(dep, "v2", apply=apply, echo=lambda _: None, poll=0)
    assert set(first) == set(second) == set(stack.services.values())
    for service, arn in second.items():
        assert arn.endswith(":3")
        assert _images(arn) == [f"{stack.outputs['ecr_repository_url']}:v2"]
        assert first[service] != arn


def test_a_tag_nobody_pushed_is_refused_before_anything_changes(
    stack: Stack, applies: list[list[str]]
) -> None:
    with pytest.raises(
        Exit, match=r"Image tag 'v9' is not in the ECR repository 'dagops-prod' .*image\.push"
    ):
        deploy_tasks.release(Context(), env="prod", image_tag="v9")
    assert applies == []
    parameter = boto3.client("ssm", region_name=REGION).get_parameter(Name="/dagops/prod/image-tag")
    assert parameter["Parameter"]["Value"] == "-"


def test_an_apply_that_does_not_roll_the_image_fails_the_deploy(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # E.g. image_tag pinned in terraform.tfvars: tofu keeps the pin, the release would not happen.
    _push(stack, "v1")
    monkeypatch.setattr(infra, "execute", lambda *_a, **_k: None)
    with pytest.raises(Exit, match=r"still run another image than .*:v1; is image_tag pinned"):
        deploy_tasks.release(Context(), env="prod", image_tag="v1")


BAD_TAGS = ["", "-rc1", ".x", "has space", "a" * 129, "semi;colon", "v1:latest"]


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_bad_image_tags_are_refused(tag: str) -> None:
    with pytest.raises(DagopsError, match="Invalid image tag"):
        validate_image_tag(tag)


def test_a_bad_tag_stops_the_deploy_before_anything_changes(stack: Stack) -> None:
    for tag in BAD_TAGS[1:]:
        with pytest.raises(Exit, match="Invalid image tag"):
            deploy_tasks.release(Context(), env="prod", image_tag=tag)
    assert _service(stack, "webserver")["taskDefinition"].endswith(":1")
    assert len(_ecs().list_task_definitions(familyPrefix="dagops-prod-run")["taskDefinitionArns"]) == 1


def test_unknown_environment_is_one_clear_error(stack: Stack) -> None:
    with pytest.raises(Exit, match="Unknown environment 'staging': expected one of prod"):
        deploy_tasks.release(Context(), env="staging", image_tag="v1")
    with pytest.raises(Exit, match="Invalid environment name"):
        deploy_tasks.release(Context(), env="../prod", image_tag="v1")


def test_missing_output_is_named(stack: Stack) -> None:
    stack.write_outputs(ecr_repository_url=None)
    with pytest.raises(Exit, match="no output 'ecr_repository_url'"):
        deploy_tasks.release(Context(), env="prod", image_tag="v1")
    stack.write_outputs(task_definition_families={"webserver": "x"})
    with pytest.raises(Exit, match="no 'run' family"):
        deploy_tasks.release(Context(), env="prod", image_tag="v1")


def test_a_service_missing_from_the_cluster_stops_the_release_before_it_starts(stack: Stack) -> None:
    stack.write_outputs(service_names={**stack.services, "code-etl": "dagops-prod-code-etl"})
    with pytest.raises(Exit, match="dagops-prod-code-etl not found in cluster"):
        deploy_tasks.release(Context(), env="prod", image_tag="v1")
    assert _service(stack, "webserver")["taskDefinition"].endswith(":1")


def _described(task_definition: str, **deployment: Any) -> dict[str, Any]:
    primary = {"status": "PRIMARY", "rolloutState": "IN_PROGRESS", "taskDefinition": task_definition}
    primary.update(deployment)
    return {
        "serviceName": "dagops-prod-webserver",
        "taskDefinition": task_definition,
        "desiredCount": 1,
        "runningCount": 0,
        "deployments": [primary],
    }


def test_rollout_assessment_reads_ecs_deployments() -> None:
    new, old = "arn:td/web:2", "arn:td/web:1"
    assert not assess(_described(new), new).done
    done = _described(new, rolloutState="COMPLETED")
    done["runningCount"] = 1
    assert assess(done, new).done
    # Circuit breaker: the new deployment FAILED, ECS rolls back to the previous revision.
    rolled = _described(old, rolloutState="IN_PROGRESS")
    rolled["deployments"].append(
        {
            "status": "ACTIVE",
            "rolloutState": "FAILED",
            "rolloutStateReason": "tasks failed to start",
            "taskDefinition": new,
        }
    )
    state = assess(rolled, new)
    assert state.failed is not None
    assert "rolled back (tasks failed to start)" in state.failed
    # Rolled back and settled: the service runs the old revision.
    settled = _described(old, rolloutState="COMPLETED")
    assert "not the new revision" in (assess(settled, new).failed or "")


def test_a_rollback_fails_the_deploy(
    stack: Stack, applies: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagops.operator.aws.ecs as ecs_module

    _push(stack, "v1")
    real_describe = ecs_module._describe

    def rolled_back(dep: Deployment, names: list[str]) -> list[dict[str, Any]]:
        services = real_describe(dep, names)
        for service in services:  # what ECS reports once the circuit breaker has rolled a service back
            service["deployments"][0]["rolloutState"] = "FAILED"
            service["deployments"][0]["rolloutStateReason"] = (
                "ECS deployment circuit breaker: tasks failed to start."
            )
        return services

    monkeypatch.setattr(ecs_module, "_describe", rolled_back)
    with pytest.raises(Exit, match=r"Deployment rolled back: dagops-prod-.*circuit breaker"):
        deploy_tasks.release(Context(), env="prod", image_tag="v1")


def test_deploy_all_publishes_the_dags_and_restarts_the_services(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # No sync agents run against the emulator: the wait for them is tested in tests/unit/sync.
    deploy_tasks.everything(Context(), env="prod", wait=False)

    s3 = boto3.client("s3", region_name=REGION)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=stack.outputs["bucket_name"])["Contents"]}
    assert {"dags/main/definitions.py", "dags/main/_manifest.json"} <= keys
    out = capsys.readouterr().out
    for service in stack.services.values():
        assert f"Restarting service {service}." in out
        # A restart keeps the task definition it had.
        assert (
            _ecs()
            .describe_services(cluster="dagops-prod", services=[service])["services"][0]["taskDefinition"]
            .endswith(":1")
        )


def test_every_task_asks_for_the_environment(stack: Stack) -> None:
    for task in (
        deploy_tasks.release,
        deploy_tasks.everything,
        deploy_tasks.show_url,
        deploy_tasks.credentials,
    ):
        with pytest.raises(Exit, match="Name the environment with --env ENV"):
            task(Context())


def test_a_rollout_that_never_settles_times_out_with_the_services_named(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagops.operator.aws.ecs import wait_stable

    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # tasks never start
    _ecs().create_service(
        cluster="dagops-prod",
        serviceName="dagops-prod-code-etl",
        taskDefinition="dagops-prod-code-main",
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [stack.subnet], "securityGroups": [stack.security_group]}
        },
    )
    lines: list[str] = []
    with pytest.raises(DagopsError, match="not stable after 0s: dagops-prod-code-etl"):
        wait_stable(
            Deployment.load("prod"), {"dagops-prod-code-etl": None}, echo=lines.append, timeout=0, poll=0
        )
    assert "  dagops-prod-code-etl: IN_PROGRESS, 0/1 running, 1 deployment(s)" in lines
