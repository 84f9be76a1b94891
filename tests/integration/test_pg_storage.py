"""The local stack's dagster.yaml storages survive a Postgres restart in a webserver-optimised instance.

A real Postgres server, the dagster.yaml that ``dagops.operator.devstack.dagster_home`` writes, and
``optimize_for_webserver`` (what ``dagster-webserver`` calls: one pooled connection per storage). After
``pg_ctl stop`` + start, the very first read and write on every storage succeed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dagops.operator.devstack import dagster_home
from dagops.operator.devstack.config import free_port
from dagops.operator.devstack.postgres import LocalPostgres, find_bin_dir

pytestmark = pytest.mark.skipif(find_bin_dir() is None, reason="PostgreSQL server binaries not installed")


@pytest.fixture
def server() -> Iterator[LocalPostgres]:
    # Not under pytest's tmp dir: as root the server runs as `postgres`, who cannot enter a 0700 folder.
    folder = Path(tempfile.mkdtemp(prefix="dagops-pgstorage-"))
    folder.chmod(0o755)
    pg = LocalPostgres(folder / "data", free_port())
    try:
        pg.start(folder / "postgres.log")
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_webserver_storages_reconnect_after_a_postgres_restart(server: LocalPostgres, tmp_path: Path) -> None:
    dagster_home.write(
        tmp_path,
        servers=[],
        max_concurrent_runs=1,
        postgres={
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "password": server.password,
            "db": server.db,
        },
    )
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        instance.optimize_for_webserver(statement_timeout=5000, pool_recycle=3600, max_overflow=20)
        # Every storage has used (and pooled) its connection before the restart.
        assert instance.get_runs() == []
        assert instance.all_instigator_state() == []
        assert instance.all_logs("no-such-run") == []

        server.stop()
        server.start(server.data_dir.parent / "postgres.log")

        # No retry: the first call on each storage after the restart must work.
        run = instance.create_run_for_job(
            dg.GraphDefinition(name="noop", node_defs=[]).to_job(), run_id="a" * 32
        )
        assert [r.run_id for r in instance.get_runs()] == [run.run_id]
        assert instance.all_instigator_state() == []
        instance.report_engine_event("after the restart", run)
        assert "after the restart" in [e.message for e in instance.all_logs(run.run_id)]
    finally:
        instance.dispose()
