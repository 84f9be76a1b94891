"""Both ways the integration fixtures get Postgres work, whichever one this run's other tests use:
testcontainers' PostgresContainer (a Docker engine) and a local PostgreSQL server (its binaries).
Each path holds Dagster's storage: a run written through a Postgres-backed instance reads back.
"""

from __future__ import annotations

import dagster as dg
import psycopg2
import pytest
from pg_source import POSTGRES_SOURCES, postgres_database


@pytest.mark.parametrize("source", POSTGRES_SOURCES)
def test_postgres_source_serves_dagster_storage(
    source: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from dagster_postgres import PostgresRunStorage

    with postgres_database(source) as db:
        conn = psycopg2.connect(
            host=db.host, port=db.port, user=db.user, password=db.password, dbname=db.db, connect_timeout=5
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_user, current_database()")
                assert cur.fetchone() == (db.user, db.db)
        finally:
            conn.close()

        url = f"postgresql://{db.user}:{db.password}@{db.host}:{db.port}/{db.db}"
        storage = PostgresRunStorage(url)
        try:
            run = dg.DagsterRun(job_name="probe", run_id=f"probe-{source}")
            storage.add_run(run)
            assert [r.job_name for r in storage.get_runs()] == ["probe"]
        finally:
            storage.dispose()
