"""A master-password rotation on a running stack's database breaks nothing: Dagster never logs in as master.

A real PostgreSQL server shaped like the RDS instance: TLS on, the master user (``dagster``) with a
password (scram), RDS's ``rds_iam`` role, and the master secret in Secrets Manager (moto) in the JSON RDS
writes. The storages are built from the cloud instance config (images/dagster.yaml rendered by the
entrypoint, exactly as in a task) and kept open, as a running webserver (pooled) and daemon (NullPool)
keep theirs. Then the password rotates as RDS rotates it: ``ALTER ROLE`` plus a new secret value.

- Today's login (the master, its password from the environment, fixed at task start): every new
  connection after the rotation is refused. This is the failure the change removes.
- Dagster's own role, set up by ``dagops.runtime.db_setup`` (which reads the secret at that moment) and
  logging in with an RDS IAM token per new connection (``DAGSTER_PG_AUTH=iam``): new connections after
  the rotation succeed, with no restart.

What only RDS can check is the token itself: here pg_hba admits ``dagster_app`` over TLS without a
password (standing in for RDS's ``rds_iam`` check), and the test asserts that each new connection
presents a freshly generated RDS token for that user, host and port.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster_postgres.utils import DagsterPostgresException
from moto import mock_aws
from sqlalchemy import event, text

from dagops.operator.devstack.config import free_port
from dagops.operator.devstack.postgres import LocalPostgres, find_bin_dir
from dagops.runtime import db_setup
from dagops.runtime.entrypoint import render_instance
from dagops.runtime.pg_storage import (
    PingingPostgresEventLogStorage,
    PingingPostgresRunStorage,
    PingingPostgresScheduleStorage,
)

pytestmark = pytest.mark.skipif(find_bin_dir() is None, reason="PostgreSQL server binaries not installed")

TEMPLATE = Path(__file__).resolve().parents[2] / "images" / "dagster.yaml"
REGION = "ap-southeast-2"
MASTER = "dagster"
APP_ROLE = "dagster_app"
FIRST, SECOND = "first-master-password", "rotated-master-password"


@dataclass
class RdsLike:
    server: LocalPostgres
    secret_arn: str
    master_password: str

    @contextmanager
    def admin(self) -> Iterator[Any]:
        """A cursor of the master user (autocommit), closed afterwards."""
        conn = psycopg2.connect(
            host=self.server.host,
            port=self.server.port,
            user=MASTER,
            password=self.master_password,
            dbname=self.server.db,
            sslmode="require",
            connect_timeout=5,
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def rotate(self, new_password: str) -> None:
        """What RDS's rotation does: a new master password in the database and in the secret."""
        with self.admin() as cur:
            cur.execute(f"ALTER ROLE {MASTER} PASSWORD %s", (new_password,))
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=self.secret_arn, SecretString=json.dumps({"username": MASTER, "password": new_password})
        )
        self.master_password = new_password

    def drop_other_connections(self) -> None:
        """Every open session ends (pool recycle, failover, restart): the storages must connect anew."""
        with self.admin() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database()"
            )


def _tls_and_passwords(server: LocalPostgres) -> None:
    """Turn the trust-auth loopback server into the RDS shape: TLS only, scram passwords, rds_iam."""
    data = server.data_dir
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(data / "server.key"), "-out", str(data / "server.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    for name in ("server.key", "server.crt"):
        server._chown_file(data / name)
        (data / name).chmod(0o600)
    (data / "pg_hba.conf").write_text(
        # Stands in for RDS's IAM check of rds_iam members (a token only RDS can verify).
        f"hostssl all {APP_ROLE} 127.0.0.1/32 trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
    )
    conn = server.database.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET ssl = on")
            cur.execute("CREATE ROLE rds_iam")  # built into RDS
            cur.execute(f"ALTER ROLE {MASTER} PASSWORD %s", (FIRST,))
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


@pytest.fixture
def rds(monkeypatch: pytest.MonkeyPatch) -> Iterator[RdsLike]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # Not under pytest's tmp dir: as root the server runs as `postgres`, who cannot enter a 0700 folder.
    folder = Path(tempfile.mkdtemp(prefix="infra-runtime-rotation-"))
    folder.chmod(0o755)
    server = LocalPostgres(folder / "data", free_port(), user=MASTER, db="dagster")
    try:
        server.start(folder / "postgres.log")
        _tls_and_passwords(server)
        with mock_aws():
            arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
                Name="rds!db-0000", SecretString=json.dumps({"username": MASTER, "password": FIRST})
            )["ARN"]
            yield RdsLike(server, arn, FIRST)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


Storages = tuple[PingingPostgresRunStorage, PingingPostgresEventLogStorage, PingingPostgresScheduleStorage]


def _storages(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Storages:
    """The three storages of the cloud instance config, rendered by the entrypoint as in a task."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "dagster.yaml").write_text(render_instance(TEMPLATE.read_text(), env))
    ref = InstanceRef.from_dir(str(tmp_path))
    return (
        ref.run_storage_data.rehydrate(PingingPostgresRunStorage),
        ref.event_storage_data.rehydrate(PingingPostgresEventLogStorage),
        ref.schedule_storage_data.rehydrate(PingingPostgresScheduleStorage),
    )


def _use(storages: Storages) -> None:
    """One read on each storage: each opens a connection (NullPool) or takes its pooled one."""
    runs, events, schedules = storages
    assert runs.get_runs() == []
    assert events.get_logs_for_run("no-such-run") == []
    assert schedules.all_instigator_state() == []


def _env(rds: RdsLike, **extra: str) -> dict[str, str]:
    return {
        "DAGSTER_PG_HOST": rds.server.host,
        "DAGSTER_PG_PORT": str(rds.server.port),
        "DAGSTER_PG_DB": rds.server.db,
        "DAGSTER_S3_BUCKET": "dagops-prod-bucket",
        "DAGOPS_COMPUTE_LOG_PREFIX": "logs/prod",
        "DAGOPS_RUN_TASK_DEFINITION": "dagops-prod-run",
        "AWS_DEFAULT_REGION": REGION,
        **extra,
    }


def test_master_login_breaks_at_the_first_rotation(
    rds: RdsLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The login tofu wrote until now: the master user, its password injected once at task start.
    env = _env(rds, DAGSTER_PG_USERNAME=MASTER, DAGSTER_PG_PASSWORD=FIRST)
    storages = _storages(tmp_path, env, monkeypatch)
    _use(storages)
    rds.rotate(SECOND)
    rds.drop_other_connections()
    with pytest.raises(DagsterPostgresException, match="too many retries"):
        storages[0].get_runs()


def test_dagsters_own_role_survives_rotations_without_a_restart(
    rds: RdsLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database the master used before (tables created and owned by the master) is handed over.
    master_env = _env(rds, DAGSTER_PG_USERNAME=MASTER, DAGSTER_PG_PASSWORD=FIRST)
    _use(_storages(tmp_path / "before", master_env, monkeypatch))
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    setup_env = _env(rds, DAGSTER_PG_USERNAME=APP_ROLE, DAGOPS_DB_MASTER_SECRET_ARN=rds.secret_arn)
    said: list[str] = []
    db_setup.run(setup_env, echo=said.append)
    assert f"created role {APP_ROLE}" in said[0] and f"now owned by {APP_ROLE}" in said[0]

    env = _env(rds, DAGSTER_PG_USERNAME=APP_ROLE, DAGSTER_PG_AUTH="iam")
    daemon = _storages(tmp_path / "daemon", env, monkeypatch)
    webserver = _storages(tmp_path / "webserver", env, monkeypatch)
    for storage in webserver:
        storage.optimize_for_webserver(statement_timeout=5000, pool_recycle=3600, max_overflow=20)
    presented: list[str] = []

    def record(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        presented.append(params["password"])

    for storage in (*daemon, *webserver):
        event.listen(storage._engine, "do_connect", record)
    _use(daemon)
    _use(webserver)
    with daemon[0]._engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == APP_ROLE
    # Dagster's schema migrations alter tables, which only their owner may do.
    with rds.admin() as cur:
        cur.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        assert [row[0] for row in cur.fetchall()] == [APP_ROLE]

    for password in (SECOND, "third-master-password"):
        rds.rotate(password)
        rds.drop_other_connections()
        before = len(presented)
        _use(daemon)  # no restart: the same storage objects, new connections
        _use(webserver)
        assert len(presented) > before  # new connections were made, each with a token
        # The setup reads the secret when it runs, so it works after any rotation (idempotent).
        said.clear()
        db_setup.run(setup_env, echo=said.append)
        assert "is ready (no change)" in said[0]

    # Each connection presented an RDS IAM token for this user at this host and port, not a password.
    assert presented
    for token in presented:
        assert token.startswith(f"{rds.server.host}:{rds.server.port}/?Action=connect&DBUser={APP_ROLE}&")
        assert "X-Amz-Signature=" in token


def test_setup_refuses_to_call_the_master_dagsters_role(rds: RdsLike) -> None:
    env = _env(rds, DAGSTER_PG_USERNAME=MASTER, DAGOPS_DB_MASTER_SECRET_ARN=rds.secret_arn)
    with pytest.raises(db_setup.ConfigError, match="is the master user"):
        db_setup.run(env)
