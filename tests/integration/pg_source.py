"""Where the integration tests' Postgres comes from: a PostgresContainer or a local server.

``DAGOPS_TEST_POSTGRES=container|local`` picks one; ``auto`` (the default) takes a container when a Docker
engine answers, else the local server. test_postgres_sources.py runs both paths, whichever the rest uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from docker_engine import need_docker_engine

from dagops.operator.devstack.compose import docker_available
from dagops.operator.devstack.config import free_port
from dagops.operator.devstack.postgres import LocalPostgres, PostgresDatabase, find_bin_dir

POSTGRES_SOURCES = ("container", "local")


def postgres_source() -> str:
    """``container`` or ``local``: DAGOPS_TEST_POSTGRES, or (auto) a container when an engine answers."""
    chosen = os.environ.get("DAGOPS_TEST_POSTGRES", "auto").strip() or "auto"
    if chosen == "auto":
        return "container" if docker_available() else "local"
    if chosen not in POSTGRES_SOURCES:
        pytest.fail(f"DAGOPS_TEST_POSTGRES must be auto, container or local, not {chosen!r}.", pytrace=False)
    return chosen


@contextmanager
def postgres_database(source: str) -> Iterator[PostgresDatabase]:
    """A fresh Postgres database from ``source``: testcontainers' PostgresContainer, or a local server."""
    if source == "container":
        need_docker_engine()
        # Ryuk (testcontainers' reaper) is an image from a registry; the `with` below removes the container
        # itself. TESTCONTAINERS_RYUK_DISABLED=false turns it back on where its image can be pulled.
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.core.config import testcontainers_config
        from testcontainers.postgres import PostgresContainer

        testcontainers_config.ryuk_disabled = os.environ["TESTCONTAINERS_RYUK_DISABLED"].lower() == "true"
        image = os.environ.get("DAGOPS_POSTGRES_IMAGE") or "postgres:16-alpine"
        with PostgresContainer(image, username="dagster", password="dagster", dbname="dagster") as pg:
            yield PostgresDatabase(
                pg.get_container_host_ip(), int(pg.get_exposed_port(5432)), "dagster", "dagster", "dagster"
            )
        return
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed for the local path")
    # Not under pytest's tmp dir: as root the server runs as `postgres`, who cannot enter a 0700 folder.
    folder = Path(tempfile.mkdtemp(prefix="dagops-it-pg-"))
    folder.chmod(0o755)
    server = LocalPostgres(folder / "data", free_port())
    try:
        server.start(folder / "postgres.log")
        yield server.database
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
