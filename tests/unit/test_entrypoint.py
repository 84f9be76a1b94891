"""The image entrypoint: settings checked per role, one clear line on a bad one, exec of the real process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dagops.errors import ConfigError
from dagops.runtime.entrypoint import parse_code_locations, plan

REPO = Path(__file__).resolve().parents[2]
PG = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "pw",
}
BASE = {"DAGSTER_S3_BUCKET": "bucket", "DAGOPS_ENV": "prod"}


def _run(
    args: list[str], env: dict[str, str], path_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO / "src"), **env}
    if path_dir is not None:
        full["PATH"] = f"{path_dir}{os.pathsep}{full['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "dagops.runtime.entrypoint", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("role", ["webserver", "daemon", "code-location", "dagster"])
def test_missing_bucket_is_one_line_and_exit_1(role: str) -> None:
    env = {**PG, "DAGOPS_ENV": "prod", "DAGOPS_LOCATION": "main", "DAGOPS_CODE_LOCATIONS": "main=code:4000"}
    _one_line_error(_run([role], env), "DAGSTER_S3_BUCKET")


@pytest.mark.parametrize("role", ["webserver", "daemon"])
def test_missing_database_settings_are_named(role: str) -> None:
    env = {**BASE, "DAGOPS_CODE_LOCATIONS": "main=code:4000", "DAGSTER_PG_HOST": "db"}
    _one_line_error(_run([role], env), "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", role)


def test_code_location_needs_its_location() -> None:
    _one_line_error(_run(["code-location"], BASE), "DAGOPS_LOCATION")


def test_unknown_or_missing_role() -> None:
    _one_line_error(_run(["scheduler"], BASE), "Unknown role 'scheduler'")
    _one_line_error(_run([], BASE), "No role")


@pytest.mark.parametrize(
    "value",
    ["main", "main=code", "main=code:http", "main=code:70000", "Main=code:4000", "main=a:1,main=b:2", " , "],
)
def test_malformed_code_locations_are_rejected(value: str) -> None:
    with pytest.raises(ConfigError, match="DAGOPS_CODE_LOCATIONS"):
        parse_code_locations(value)
    _one_line_error(
        _run(["webserver"], {**BASE, **PG, "DAGOPS_CODE_LOCATIONS": value}), "DAGOPS_CODE_LOCATIONS"
    )


def test_code_locations_are_parsed() -> None:
    assert parse_code_locations("main=code-main:4000, etl=10.0.0.5:4001") == [
        ("main", "code-main", 4000),
        ("etl", "10.0.0.5", 4001),
    ]


def _recorder(bin_dir: Path, name: str) -> Path:
    """A stand-in executable that records its argv, pid, cwd and environment, as the real one would run."""
    out = bin_dir / f"{name}.json"
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"json.dump({{'argv': sys.argv, 'pid': os.getpid(), 'cwd': os.getcwd(), 'env': dict(os.environ)}}, "
        f"open({str(out)!r}, 'w'))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return out


@pytest.mark.parametrize(
    ("role", "binary"), [("webserver", "dagster-webserver"), ("daemon", "dagster-daemon")]
)
def test_webserver_and_daemon_render_their_files_and_exec(tmp_path: Path, role: str, binary: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = _recorder(bin_dir, binary)
    home = tmp_path / "home"
    env = {
        **BASE,
        **PG,
        "DAGSTER_HOME": str(home),
        "DAGOPS_CODE_LOCATIONS": "main=code-main.dagops.local:4000,etl=code-etl.dagops.local:4000",
        "DAGOPS_INSTANCE_TEMPLATE": str(REPO / "images" / "dagster.yaml"),
        "DAGOPS_RUN_SUBNETS": "subnet-a,subnet-b",
    }
    full = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO / "src"), **env}
    proc = subprocess.Popen([sys.executable, "-m", "dagops.runtime.entrypoint", role], env=full)
    assert proc.wait(timeout=60) == 0
    seen = json.loads(record.read_text())

    assert seen["pid"] == proc.pid  # exec'd in place: signals reach dagster directly
    workspace = str(home / "workspace.yaml")
    if role == "webserver":
        assert seen["argv"][1:] == ["-h", "0.0.0.0", "-p", "3000", "-w", workspace]  # noqa: S104
    else:
        assert seen["argv"][1:] == ["run", "-w", workspace]
    assert seen["env"]["DAGSTER_HOME"] == str(home)
    assert seen["env"]["DAGOPS_COMPUTE_LOG_PREFIX"] == "logs/prod"
    assert seen["env"]["DAGSTER_PG_PORT"] == "5432"
    assert yaml.safe_load((home / "workspace.yaml").read_text()) == {
        "load_from": [
            {"grpc_server": {"host": "code-main.dagops.local", "port": 4000, "location_name": "main"}},
            {"grpc_server": {"host": "code-etl.dagops.local", "port": 4000, "location_name": "etl"}},
        ]
    }
    instance = yaml.safe_load((home / "dagster.yaml").read_text())
    assert instance["run_launcher"]["config"]["run_task_kwargs"]["networkConfiguration"] == {
        "awsvpcConfiguration": {"subnets": ["subnet-a", "subnet-b"], "assignPublicIp": "ENABLED"}
    }


def test_a_missing_executable_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**BASE, **PG, "DAGSTER_HOME": str(home), "DAGOPS_CODE_LOCATIONS": "main=code:4000"}
    proc = subprocess.run(
        [sys.executable, "-m", "dagops.runtime.entrypoint", "daemon"],
        env={"PATH": str(tmp_path), "PYTHONPATH": str(REPO / "src"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _one_line_error(proc, "dagster-daemon")


def test_code_location_runs_the_sync_agent() -> None:
    launch = plan(["code-location"], {**BASE, "DAGOPS_LOCATION": "main"})
    assert launch.argv == [sys.executable, "-m", "dagops.runtime.sync", "run", "--location", "main"]
    assert launch.sync_first is None


def test_a_run_task_syncs_its_location_then_runs_in_the_synced_tree() -> None:
    payload = json.dumps(
        {
            "__class__": "ExecuteRunArgs",
            "job_origin": {
                "repository_origin": {"code_location_origin": {"location_name": "etl", "host": "x"}}
            },
            "run_id": "abc",
        }
    )
    env = {**BASE, **PG, "DAGOPS_CODE_DIR": "/opt/dagster/code"}
    launch = plan(["dagster", "api", "execute_run", payload], env)
    assert launch.sync_first == "etl"
    assert launch.cwd == "/opt/dagster/code/etl/current"
    assert launch.argv == ["dagster", "api", "execute_run", payload]
    assert launch.env["DAGOPS_COMPUTE_LOG_PREFIX"] == "logs/prod"

    explicit = plan(["dagster", "api", "execute_run", payload], {**env, "DAGOPS_LOCATION": "main"})
    assert explicit.sync_first == "main"


def test_a_run_task_finds_its_location_in_the_run_launchers_real_command() -> None:
    """The EcsRunLauncher's command: ExecuteRunArgs whose job origin points into <code_dir>/<loc>/current."""
    from dagster._core.code_pointer import FileCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._grpc.types import ExecuteRunArgs

    current = "/opt/dagster/code/etl/current"
    pointer = FileCodePointer(f"{current}/definitions.py", "defs", working_directory=current)
    # The code server's origin carries Dagster's default entry point, ["dagster"].
    repo = RepositoryPythonOrigin("/app/.venv/bin/python", pointer, entry_point=["dagster"])
    origin = JobPythonOrigin("numbers_job", repo)
    command = ExecuteRunArgs(job_origin=origin, run_id="r1", instance_ref=None).get_command_args()
    assert command[:3] == ["dagster", "api", "execute_run"]
    env = {**BASE, **PG, "DAGOPS_CODE_DIR": "/opt/dagster/code"}
    launch = plan(command, env)
    assert launch.sync_first == "etl"
    assert launch.cwd == current
    # A pointer outside the code dir names no location.
    elsewhere = FileCodePointer("/tmp/etl/current/definitions.py", "defs", working_directory="/tmp")
    stray = JobPythonOrigin(
        "j", RepositoryPythonOrigin("/app/.venv/bin/python", elsewhere, entry_point=["dagster"])
    )
    with pytest.raises(ConfigError, match="DAGOPS_LOCATION is not set"):
        plan(ExecuteRunArgs(job_origin=stray, run_id="r2", instance_ref=None).get_command_args(), env)


def test_a_run_task_without_a_location_is_refused() -> None:
    with pytest.raises(ConfigError, match="DAGOPS_LOCATION"):
        plan(["dagster", "api", "execute_run", "{}"], {**BASE, **PG})
    with pytest.raises(ConfigError, match="DAGSTER_PG_PASSWORD"):
        plan(
            ["dagster", "api", "execute_run", "{}"],
            {**BASE, **{k: v for k, v in PG.items() if "PASS" not in k}},
        )


def test_a_given_workspace_file_is_used_as_is(tmp_path: Path) -> None:
    given = tmp_path / "workspace.yaml"
    given.write_text("load_from: []\n")
    home = tmp_path / "home"
    env = {
        **BASE,
        **PG,
        "DAGSTER_HOME": str(home),
        "DAGOPS_WORKSPACE": str(given),
        "DAGOPS_INSTANCE_TEMPLATE": str(REPO / "compose" / "dagster.yaml"),
    }
    launch = plan(["daemon"], env)
    assert launch.argv == ["dagster-daemon", "run", "-w", str(given)]
    assert list(launch.files) == [str(home / "dagster.yaml")]
    with pytest.raises(ConfigError, match="DAGOPS_WORKSPACE names"):
        plan(["daemon"], {**env, "DAGOPS_WORKSPACE": str(tmp_path / "missing.yaml")})
    with pytest.raises(ConfigError, match="DAGOPS_CODE_LOCATIONS is not set"):
        plan(["daemon"], {k: v for k, v in env.items() if k != "DAGOPS_WORKSPACE"})


def test_publish_role_publishes_every_registered_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from dagops.runtime.entrypoint import main

    (tmp_path / "code_locations" / "main").mkdir(parents=True)
    (tmp_path / "code_locations" / "main" / "definitions.py").write_text("defs = None\n")
    (tmp_path / "code_locations" / "locations.yaml").write_text(
        "locations:\n- name: main\n  source: code_locations/main\n  entry: definitions.py\n"
    )
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DAGSTER_S3_BUCKET": "dagops-local",
        "DAGOPS_ROOT": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="dagops-local")
        assert main(["publish"]) == 0
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="dagops-local")["Contents"]}
    assert {"dags/main/definitions.py", "dags/main/_manifest.json"} <= keys
    monkeypatch.delenv("DAGOPS_ROOT")
    assert main(["publish"]) == 1


IAM_PG = {**{k: v for k, v in PG.items() if k != "DAGSTER_PG_PASSWORD"}, "DAGSTER_PG_AUTH": "iam"}


def test_with_iam_auth_no_process_needs_a_password(tmp_path: Path) -> None:
    env = {**BASE, **IAM_PG, "DAGOPS_CODE_LOCATIONS": "main=code:4000", "DAGSTER_HOME": str(tmp_path)}
    env["DAGOPS_INSTANCE_TEMPLATE"] = str(REPO / "images" / "dagster.yaml")
    launch = plan(["daemon"], env)
    config = yaml.safe_load(launch.files[str(tmp_path / "dagster.yaml")])
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        storage = config[key]["config"]
        assert "password" not in storage["postgres_db"]
        assert storage["auth_provider"] == {"aws_wif": {"region": {"env": "AWS_DEFAULT_REGION"}}}
    run = plan(["dagster", "api", "execute_run", "{}"], {**BASE, **IAM_PG, "DAGOPS_LOCATION": "main"})
    assert run.sync_first == "main"


def test_an_unknown_database_auth_mode_is_one_line() -> None:
    env = {**BASE, **PG, "DAGSTER_PG_AUTH": "kerberos", "DAGOPS_CODE_LOCATIONS": "main=code:4000"}
    _one_line_error(_run(["webserver"], env), "DAGSTER_PG_AUTH is 'kerberos': expected one of password, iam")


def test_db_setup_runs_the_role_setup_with_the_master_secret_named() -> None:
    env = {**BASE, **IAM_PG, "DAGOPS_DB_MASTER_SECRET_ARN": "arn:aws:secretsmanager:x:1:secret:rds!db"}
    launch = plan(["db-setup"], env)
    assert launch.argv == [sys.executable, "-m", "dagops.runtime.db_setup"]
    with pytest.raises(ConfigError, match="DAGOPS_DB_MASTER_SECRET_ARN"):
        plan(["db-setup"], {**BASE, **IAM_PG})


def test_a_bad_database_port_is_one_line_and_exit_1() -> None:
    env = {**BASE, **PG, "DAGSTER_PG_PORT": "54x2", "DAGOPS_CODE_LOCATIONS": "main=code:4000"}
    _one_line_error(_run(["daemon"], env), "dagops-entrypoint: DAGSTER_PG_PORT='54x2' is not a port number.")
    launch = plan(["code-location"], {**BASE, "DAGOPS_LOCATION": "main", "DAGSTER_PG_PORT": " 5433 "})
    assert launch.env["DAGSTER_PG_PORT"] == "5433"


def test_the_plan_reads_only_the_mapping_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mapping is what the started process gets: a variable only in this process's environment is
    unset."""
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster")
    monkeypatch.setenv("DAGOPS_LOCATION", "main")
    with pytest.raises(ConfigError, match=r"^DAGSTER_PG_DB is not set \(needed by the run role\)\.$"):
        plan(
            ["dagster", "api", "execute_run", "{}"],
            {**BASE, **{k: v for k, v in PG.items() if k != "DAGSTER_PG_DB"}},
        )
    with pytest.raises(
        ConfigError, match=r"^DAGOPS_LOCATION is not set \(needed by the code-location role\)\.$"
    ):
        plan(["code-location"], BASE)


def test_db_setup_names_a_missing_or_bad_setting_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagops.runtime import db_setup

    monkeypatch.setenv("DAGSTER_PG_HOST", "db")  # not in the mapping: not read
    setup = {**IAM_PG, "DAGOPS_DB_MASTER_SECRET_ARN": "arn:aws:secretsmanager:x:1:secret:rds!db"}
    with pytest.raises(ConfigError, match=r"^DAGSTER_PG_HOST is not set \(needed by db-setup\)\.$"):
        db_setup.run({k: v for k, v in setup.items() if k != "DAGSTER_PG_HOST"})
    with pytest.raises(
        ConfigError, match=r"^DAGOPS_DB_MASTER_SECRET_ARN is not set \(needed by db-setup\)\.$"
    ):
        db_setup.run({**IAM_PG, "DAGOPS_DB_MASTER_SECRET_ARN": " "})
    with pytest.raises(ConfigError) as caught:
        db_setup.run({**setup, "DAGOPS_DB_SSLMODE": "always"})
    assert str(caught.value) == (
        "DAGOPS_DB_SSLMODE='always' is not one of disable, allow, prefer, require, verify-ca or verify-full."
    )
