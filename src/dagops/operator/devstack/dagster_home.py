"""DAGSTER_HOME of the local stack: dagster.yaml (storage, run queue, monitoring) and workspace.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dagops import workspace

# dagops.runtime.pg_storage's storage classes, named as dagster.yaml names them. Named here, not imported: the
# supervisor writes dagster.yaml and must not import Dagster (the processes it starts do).
PG_STORAGE_MODULE = "dagops.runtime.pg_storage"
PG_STORAGE_CLASSES = {
    "run_storage": "PingingPostgresRunStorage",
    "event_log_storage": "PingingPostgresEventLogStorage",
    "schedule_storage": "PingingPostgresScheduleStorage",
}


def instance_storage(postgres_db: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml storage keys for dagops.runtime.pg_storage's classes, all three on ``postgres_db``."""
    return {
        key: {"module": PG_STORAGE_MODULE, "class": name, "config": {"postgres_db": dict(postgres_db)}}
        for key, name in PG_STORAGE_CLASSES.items()
    }


def instance_config(
    *,
    compute_logs_dir: Path,
    max_concurrent_runs: int,
    postgres: dict[str, Any] | None,
    sqlite_dir: Path | None = None,
) -> dict[str, Any]:
    """dagster.yaml as a mapping.

    Postgres storage when ``postgres`` (host, port, user, password, db) is given,
    else SQLite in ``sqlite_dir``.
    """
    config: dict[str, Any] = {}
    if postgres is not None:
        # dagster-postgres' storages, with a liveness check on the webserver's pooled connections, so a
        # Postgres restart does not fail its next requests (see dagops.runtime.pg_storage).
        config.update(
            instance_storage(
                {
                    "hostname": postgres["host"],
                    "port": int(postgres["port"]),
                    "username": postgres["user"],
                    "password": postgres["password"],
                    "db_name": postgres["db"],
                    # psycopg2 explicitly: SQLAlchemy 2.1 would map postgresql:// to psycopg 3.
                    "scheme": "postgresql+psycopg2",
                }
            )
        )
    else:
        if sqlite_dir is None:
            raise ValueError("SQLite storage needs a directory")
        config["storage"] = {"sqlite": {"base_dir": str(sqlite_dir)}}
    config.update(
        {
            "run_coordinator": {
                "module": "dagster.core.run_coordinator",
                "class": "QueuedRunCoordinator",
                # Dequeue every second (default 5 s): a run launched in the UI starts without a pause.
                # A run dequeued while its code server restarts (a sync swap) is retried, not failed.
                "config": {
                    "max_concurrent_runs": int(max_concurrent_runs),
                    "dequeue_interval_seconds": 1,
                    "max_user_code_failure_retries": 5,
                    "user_code_failure_retry_delay": 2,
                },
            },
            "run_launcher": {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"},
            "compute_logs": {
                "module": "dagster.core.storage.local_compute_log_manager",
                "class": "LocalComputeLogManager",
                "config": {"base_dir": str(compute_logs_dir)},
            },
            "run_monitoring": {"enabled": True, "poll_interval_seconds": 30},
            "telemetry": {"enabled": False},
        }
    )
    return config


def write(
    home: Path,
    *,
    servers: list[tuple[str, str, int]],
    max_concurrent_runs: int,
    postgres: dict[str, Any] | None,
) -> tuple[Path, Path]:
    """Write dagster.yaml and workspace.yaml into ``home``; return their paths."""
    home.mkdir(parents=True, exist_ok=True)
    instance = instance_config(
        compute_logs_dir=home / "compute_logs",
        max_concurrent_runs=max_concurrent_runs,
        postgres=postgres,
        sqlite_dir=home / "storage",
    )
    dagster_yaml = home / "dagster.yaml"
    dagster_yaml.write_text(yaml.safe_dump(instance, sort_keys=False))
    workspace_yaml = home / "workspace.yaml"
    workspace_yaml.write_text(workspace.render(servers))
    return dagster_yaml, workspace_yaml
