"""images/dagster.yaml (the cloud instance config) is valid for the pinned dagster and dagster-aws.

Dagster has no public "validate this dagster.yaml" call short of ``DagsterInstance.from_config``, which
connects to Postgres; so the file is loaded with ``InstanceRef.from_dir`` (the same schema check an
instance runs; internal module ``dagster._core.instance.ref``) and each configurable class is built from
its config with ``rehydrate``: the EcsRunLauncher and S3ComputeLogManager for real, under moto.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from moto import mock_aws

from dagops.runtime.ecs_run_launcher import LocationRoleEcsRunLauncher
from dagops.runtime.entrypoint import render_instance
from dagops.runtime.pg_storage import (
    PingingPostgresEventLogStorage,
    PingingPostgresRunStorage,
    PingingPostgresScheduleStorage,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "images" / "dagster.yaml"
REGION = "ap-southeast-2"

ENV = {
    "DAGSTER_PG_HOST": "db.example.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_S3_BUCKET": "dagops-prod-bucket",
    "DAGOPS_COMPUTE_LOG_PREFIX": "logs/prod",
    "DAGOPS_RUN_TASK_DEFINITION": "dagops-prod-run",
    "DAGOPS_RUN_SUBNETS": "subnet-aaa, subnet-bbb",
    "DAGOPS_RUN_SECURITY_GROUPS": "sg-run",
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def _home(tmp_path: Path, env: dict[str, str]) -> Path:
    (tmp_path / "dagster.yaml").write_text(render_instance(TEMPLATE.read_text(), env))
    return tmp_path


def test_instance_config_passes_dagsters_schema(aws_env: None, tmp_path: Path) -> None:
    ref = InstanceRef.from_dir(str(_home(tmp_path, ENV)))

    assert ref.run_launcher_data is not None
    assert (ref.run_launcher_data.module_name, ref.run_launcher_data.class_name) == (
        "dagops.runtime.ecs_run_launcher",
        "LocationRoleEcsRunLauncher",
    )
    assert ref.run_coordinator_data is not None
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"
    assert ref.compute_logs_data.class_name == "S3ComputeLogManager"
    storages = (ref.run_storage_data, ref.event_storage_data, ref.schedule_storage_data)
    assert [(d.module_name, d.class_name) for d in storages] == [
        ("dagops.runtime.pg_storage", "PingingPostgresRunStorage"),
        ("dagops.runtime.pg_storage", "PingingPostgresEventLogStorage"),
        ("dagops.runtime.pg_storage", "PingingPostgresScheduleStorage"),
    ]
    assert ref.settings["telemetry"] == {"enabled": False}
    assert ref.settings["run_monitoring"]["enabled"] is True


def test_postgres_storage_reads_every_setting_from_the_environment(aws_env: None, tmp_path: Path) -> None:
    ref = InstanceRef.from_dir(str(_home(tmp_path, ENV)))
    for data, cls in (
        (ref.run_storage_data, PingingPostgresRunStorage),
        (ref.event_storage_data, PingingPostgresEventLogStorage),
        (ref.schedule_storage_data, PingingPostgresScheduleStorage),
    ):
        result = process_config(cls.config_type(), yaml.safe_load(data.config_yaml))
        assert result.success, result.errors
        db = result.value["postgres_db"]
        assert (db["hostname"], db["port"], db["db_name"], db["username"], db["password"]) == (
            "db.example.internal",
            5432,
            "dagster",
            "dagster",
            "secret",
        )
        assert db["scheme"] == "postgresql+psycopg2"
        assert db["params"] == {"sslmode": "require"}


def test_run_launcher_and_compute_logs_build_from_the_config(aws_env: None, tmp_path: Path) -> None:
    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.register_task_definition(
            family="dagops-prod-run",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "run", "image": "repo/dagops:abc1234", "essential": True}],
        )
        ref = InstanceRef.from_dir(str(_home(tmp_path, ENV)))
        assert ref.run_launcher_data is not None
        launcher = ref.run_launcher_data.rehydrate(LocationRoleEcsRunLauncher)
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.task_definition is not None
        assert launcher.task_definition.endswith(":task-definition/dagops-prod-run:1")
        assert launcher.container_name == "run"
        assert launcher.include_sidecars is False
        assert launcher.secrets_tags == []
        assert launcher.run_task_kwargs["networkConfiguration"] == {
            "awsvpcConfiguration": {
                "subnets": ["subnet-aaa", "subnet-bbb"],
                "assignPublicIp": "ENABLED",
                "securityGroups": ["sg-run"],
            }
        }

        logs = ref.compute_logs_data.rehydrate(S3ComputeLogManager)
        assert logs._s3_bucket == "dagops-prod-bucket"
        assert logs._s3_prefix == "logs/prod"

        assert ref.run_coordinator_data is not None
        coordinator = ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
        queue = coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 4
        # A code server restarting under a sync or a deploy must not fail the runs dequeued meanwhile.
        assert queue.max_user_code_failure_retries > 0


def test_without_run_subnets_the_daemons_network_is_reused(aws_env: None) -> None:
    env = {k: v for k, v in ENV.items() if not k.startswith("DAGOPS_RUN_S")}
    config = yaml.safe_load(render_instance(TEMPLATE.read_text(), env))
    launcher = config["run_launcher"]["config"]
    assert "run_task_kwargs" not in launcher
    assert launcher["use_current_ecs_task_config"] is True


def test_a_missing_bucket_makes_the_config_invalid(
    aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_S3_BUCKET")
    ref = InstanceRef.from_dir(str(_home(tmp_path, ENV)))
    with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_S3_BUCKET"):
        ref.compute_logs_data.rehydrate(S3ComputeLogManager)


def test_a_capacity_provider_that_ecs_does_not_know_is_one_clear_error(aws_env: None) -> None:
    from dagops.errors import ConfigError

    with pytest.raises(ConfigError, match="DAGOPS_RUN_CAPACITY_PROVIDER is 'SPOT': expected one of"):
        render_instance(TEMPLATE.read_text(), {**ENV, "DAGOPS_RUN_CAPACITY_PROVIDER": "SPOT"})
