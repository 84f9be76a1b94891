"""The runtime image, built and run: it is not root, and each of its roles starts and proves itself.

- webserver: answers /server_info and lists code location ``main`` LOADED from the code-location container;
- code-location: syncs ``main`` from S3 (moto's server in a container), serves it over gRPC;
- run worker: ``dagster api execute_run <args>`` (the command the EcsRunLauncher gives a run task) syncs
  the run's location, executes the run to SUCCESS in Postgres, and its assets land in S3;
- daemon: heartbeats in Postgres, as the webserver reports.

The run worker test runs before the daemon starts: the daemon's queued-run coordinator would otherwise
launch the queued run itself (in the code-location container) before the test hands it to a run worker.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import (
    INSTANCE_TEMPLATE,
    LOCATION,
    PG,
    REPO,
    ROLE_ENV,
    Engine,
    dumps,
    run_status,
)
from polling import wait_for

from dagops import webserver
from dagops.operator.devstack import s3 as local_s3

LAUNCH = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId status } } ... on PythonError { message } } }
"""
LOCATION_JOBS = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  __typename ... on RepositoryLocation { repositories { name jobs { name } } } } } } } }
"""
DAEMONS = (
    "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy lastHeartbeatTime } } } }"
)


def test_the_image_runs_as_a_fixed_non_root_user(engine: Engine, native_image: str) -> None:
    config = engine.client.images.get(engine.image).attrs["Config"]
    assert config["User"] == "10001:10001"
    out = engine.client.containers.run(engine.image, entrypoint=["id", "-u"], remove=True)
    assert out.decode().strip() == "10001"


def test_the_image_holds_the_runtime_and_not_the_operator_tools(engine: Engine, native_image: str) -> None:
    # The image is built without src/dagops/operator (images/Dockerfile.dockerignore): the roles need only
    # dagops.runtime and the shared modules (lint-imports checks the same in the source).
    probe = (
        "import importlib.util as u; import dagops.runtime.entrypoint, dagops.runtime.sync.agent; "
        "print(u.find_spec('dagops.operator') is None)"
    )
    out = engine.client.containers.run(engine.image, entrypoint=["python", "-c", probe], remove=True)
    assert out.decode().strip() == "True"


def test_without_settings_a_role_exits_with_one_line(engine: Engine, native_image: str) -> None:
    container = engine.run("bad-settings", command=["webserver"])
    assert container.wait(timeout=60)["StatusCode"] == 1
    assert container.logs().decode().strip() == (
        "dagops-entrypoint: DAGSTER_S3_BUCKET is not set (needed by the webserver role)."
    )


def test_code_location_syncs_main_from_s3_and_serves_grpc(
    engine: Engine, code_location: Any, s3_endpoint: str
) -> None:
    port = engine.port(code_location, 4000)
    health = [
        sys.executable,
        "-m",
        "dagster",
        "api",
        "grpc-health-check",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]

    def serving() -> bool:
        return subprocess.run(health, capture_output=True, timeout=30, check=False).returncode == 0

    wait_for(
        serving,
        180,
        "the code server to answer gRPC health checks",
        interval=0.5,
        logs=lambda: engine.logs(code_location),
    )
    # The code it serves is the published code, synced into the container's code dir.
    served = code_location.exec_run(["cat", f"/opt/dagster/code/{LOCATION}/current/definitions.py"])
    assert served.exit_code == 0, served.output
    assert served.output.decode() == (REPO / "code_locations" / LOCATION / "definitions.py").read_text()
    assert code_location.exec_run(["id", "-u"]).output.decode().strip() == "10001"


def test_webserver_answers_server_info_and_loads_main(engine: Engine, webserver_url: str) -> None:
    info = webserver.server_info(webserver_url)
    assert info is not None and info.get("dagster_webserver_version"), info
    entries = webserver.query(webserver_url, LOCATION_JOBS)["workspaceOrError"]["locationEntries"]
    (main,) = [e for e in entries if e["name"] == LOCATION]
    jobs = {j["name"] for repo in main["locationOrLoadError"]["repositories"] for j in repo["jobs"]}
    assert "numbers_job" in jobs, dumps(main)


def test_run_worker_executes_a_run_to_success(
    engine: Engine,
    webserver_url: str,
    postgres: int,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from dagster import DagsterInstance
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.instance.ref import InstanceRef
    from dagster._grpc.types import ExecuteRunArgs

    launched = webserver.query(
        webserver_url,
        LAUNCH,
        {
            "p": {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": "__repository__",
                    "jobName": "numbers_job",
                },
                "runConfigData": {},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert launched["run"]["status"] == "QUEUED"

    # Do what the daemon and the EcsRunLauncher do: mark the run STARTING, then start a run task with
    # `dagster api execute_run <ExecuteRunArgs>`, the instance reference naming the container's paths.
    config_dir = tmp_path / "instance"
    config_dir.mkdir()
    (config_dir / "dagster.yaml").write_text((REPO / "compose" / "dagster.yaml").read_text())
    host_view = {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres),
        "AWS_ENDPOINT_URL": s3_endpoint,
    }
    for name, value in {**ROLE_ENV, **host_view, "DAGOPS_COMPUTE_LOG_PREFIX": "logs/containers"}.items():
        monkeypatch.setenv(name, value)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(config_dir))) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_code_origin is not None
        instance.report_dagster_event(
            DagsterEvent(event_type_value=DagsterEventType.PIPELINE_STARTING.value, job_name=run.job_name),
            run_id=run_id,
        )
        container_ref = InstanceRef.from_dir("/opt/dagster/home", config_dir=str(config_dir))
        args = ExecuteRunArgs(job_origin=run.job_code_origin, run_id=run_id, instance_ref=container_ref)
        # The EcsRunLauncher's command override, as it builds it.
        command = list(args.get_command_args())
        started = time.monotonic()
        worker = engine.run("run", command=command, env=ROLE_ENV)
        exit_code = worker.wait(timeout=300)["StatusCode"]
        engine.figures["run worker start to exit"] = f"{time.monotonic() - started:.1f} s"
        assert exit_code == 0, engine.logs(worker, tail=80)
        finished = instance.get_run_by_id(run_id)
        assert finished is not None and finished.status.value == "SUCCESS", engine.logs(worker, tail=80)
    assert run_status(webserver_url, run_id) == "SUCCESS"
    # The run's assets were written by the worker to the location's S3 prefix.
    s3 = local_s3.client(s3_endpoint)
    body = s3.get_object(Bucket=ROLE_ENV["DAGSTER_S3_BUCKET"], Key=f"assets/{LOCATION}/numbers/summary.json")
    assert b'"sum": 55' in body["Body"].read()


def test_daemon_heartbeats(engine: Engine, webserver_url: str, postgres: int) -> None:
    env = {
        **ROLE_ENV,
        "DAGOPS_CODE_LOCATIONS": f"{LOCATION}=code-main:4000",
        "DAGOPS_INSTANCE_TEMPLATE": INSTANCE_TEMPLATE,
    }
    mount = {str(REPO / "compose" / "dagster.yaml"): {"bind": INSTANCE_TEMPLATE, "mode": "ro"}}
    started = time.monotonic()
    daemon = engine.run("daemon", command=["daemon"], env=env, volumes=mount)

    def healthy() -> list[dict[str, Any]] | None:
        statuses = webserver.query(webserver_url, DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = [s for s in statuses if s["required"]]
        return (
            statuses if required and all(s["healthy"] and s["lastHeartbeatTime"] for s in required) else None
        )

    statuses = wait_for(
        healthy, 120, "healthy daemons with heartbeats", interval=0.5, logs=lambda: engine.logs(daemon)
    )
    engine.figures["daemon start to healthy"] = f"{time.monotonic() - started:.1f} s"
    assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"} <= {
        s["daemonType"] for s in statuses if s["required"]
    }
    # The heartbeats are rows in Postgres, and they keep coming.
    import psycopg2

    def beats() -> dict[str, float]:
        conn = psycopg2.connect(
            host="127.0.0.1", port=postgres, user=PG["user"], password=PG["password"], dbname=PG["db"]
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT daemon_type, timestamp FROM daemon_heartbeats")
                return {kind: stamp.timestamp() for kind, stamp in cur.fetchall()}
        finally:
            conn.close()

    first = beats()
    assert "SCHEDULER" in first, first

    def advanced() -> dict[str, float] | None:
        now = beats()
        return now if now.get("SCHEDULER", 0) > first["SCHEDULER"] else None

    # Heartbeats come every 30 s; under CI's load (infra runs beside this session) a daemon loop can
    # take longer, so allow four intervals: a daemon that stopped beating still fails.
    later = wait_for(
        advanced, 120, "the scheduler's heartbeat to advance", interval=0.5, logs=lambda: engine.logs(daemon)
    )
    assert later["SCHEDULER"] > first["SCHEDULER"]
