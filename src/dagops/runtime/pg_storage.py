"""Dagster's Postgres storages, with a liveness check on every pooled connection the webserver takes.

``dagster-webserver`` calls ``optimize_for_webserver`` on its storages: each then keeps one open connection
in a SQLAlchemy QueuePool, without ``pool_pre_ping`` (dagster-postgres 0.29 has no setting for it; its
other processes use a NullPool, a fresh connection each time). After Postgres restarts (the local stack's
supervisor restarting it, an RDS reboot or failover) that pooled connection is dead, and the next request
on it fails with "server closed the connection unexpectedly": the first ``launchRun`` answers HTTP 500 and
can leave its run in NOT_STARTED. These subclasses add the check SQLAlchemy documents for pessimistic
disconnect handling: a ``SELECT 1`` at checkout; a connection that fails it is discarded and replaced.

dagster.yaml names them with the separate storage keys ``run_storage``, ``event_log_storage`` and
``schedule_storage`` (``module: dagops.runtime.pg_storage``, ``class: ...``, ``config: {postgres_db:
...}``, see ``dagops.operator.devstack.dagster_home.instance_storage``); they take exactly the config of
their dagster-postgres base classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

MODULE = __name__


def ping_on_checkout(engine: Engine) -> None:
    """Make ``engine``'s pool test each connection it hands out; a dead one is replaced, not returned."""

    def ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as error:  # any failure of the probe: psycopg2's OperationalError, InterfaceError
            raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error

    event.listen(engine, "checkout", ping)


class _PingPooledConnections:
    """Mixin: after dagster swaps in the webserver's pooled engine, make that pool check its connections."""

    _engine: Engine

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)  # type: ignore[misc]
        ping_on_checkout(self._engine)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(  # type: ignore[call-arg]
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


class PingingPostgresRunStorage(_PingPooledConnections, PostgresRunStorage):
    """dagster_postgres' run storage; the webserver's pooled connection is checked before each use."""


class PingingPostgresEventLogStorage(_PingPooledConnections, PostgresEventLogStorage):
    """dagster_postgres' event log storage; the webserver's pooled connection is checked before each use."""


class PingingPostgresScheduleStorage(_PingPooledConnections, PostgresScheduleStorage):
    """dagster_postgres' schedule storage; the webserver's pooled connection is checked before each use."""
