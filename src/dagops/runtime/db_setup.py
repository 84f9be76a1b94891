"""Dagster's own database role, set up by the master user once, then used by every Dagster process.

RDS keeps the master password in Secrets Manager and rotates it (``manage_master_user_password``, every
7 days), while ECS hands a secret to a container only when the task starts: a process logged in as the
master would lose the database at the first rotation. So no Dagster process uses the master. They log in
as their own role (``DAGSTER_PG_USERNAME``, no password) with an RDS IAM token generated for each new
connection (``DAGSTER_PG_AUTH=iam``: dagster-postgres' ``aws_wif`` auth provider; the task roles may
``rds-db:connect`` as that user only).

This module creates that role. It runs as a one-off ECS task (``dagops-entrypoint db-setup``, started by
an environment's first ``invoke deploy`` and by ``invoke deploy.db-setup``) whose task role alone may
read the master secret; it reads the secret through the Secrets Manager API at that moment, so a
rotation never leaves it behind. Its settings are dagops.settings' ``PostgresSettings`` and
``DatabaseSetupSettings``, read from the mapping ``run`` is given. Every step is idempotent:

- the role exists, may log in, and is a member of ``rds_iam`` (RDS's IAM authentication);
- it owns the database's ``public`` schema and every table, view and sequence the master created there
  (Dagster's schema migrations alter its tables, which only an owner may do);
- it has every privilege on the database.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from dagops.errors import ConfigError, DagopsError
from dagops.settings import DatabaseSetupSettings, PostgresSettings, load

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# RDS's built-in role that makes a user authenticate with IAM tokens instead of a password.
IAM_ROLE = "rds_iam"
# relkind -> the ALTER statement that changes such a relation's owner (owned sequences move with their table).
_ALTER = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}


def validate_role_name(name: str) -> str:
    if not ROLE_NAME.fullmatch(name):
        raise ConfigError(
            f"Database role name {name!r} is not valid: use 1-63 lowercase letters, digits or '_', "
            "not starting with a digit."
        )
    return name


def master_credentials(secret_arn: str, client: Any = None) -> tuple[str, str]:
    """The master user name and password, read from the RDS-managed secret now (not from the environment)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    secrets = client or boto3.client("secretsmanager")
    try:
        value = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
        return str(value["username"]), str(value["password"])
    except (ClientError, BotoCoreError) as exc:
        raise DagopsError(f"Cannot read the database master secret {secret_arn}: {exc}.") from None
    except (ValueError, KeyError, TypeError):
        raise DagopsError(
            f"The database master secret {secret_arn} is not JSON with 'username' and 'password'."
        ) from None


def ensure_app_role(conn: Any, role: str) -> list[str]:
    """Create or update ``role`` through ``conn`` (the master, on Dagster's database); say what changed."""
    from psycopg2 import sql

    validate_role_name(role)
    ident = sql.Identifier(role)
    done: list[str] = []
    conn.autocommit = False
    with conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, current_database()")
        master, database = cur.fetchone()
        if role == master:
            raise ConfigError(f"The Dagster database role {role!r} is the master user; give it its own name.")
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
            done.append(f"created role {role}")
        else:
            cur.execute(sql.SQL("ALTER ROLE {} LOGIN").format(ident))
        # Membership lets the master hand its objects over (PostgreSQL 16 no longer makes a role's creator
        # a member of it).
        cur.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident))
        cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(IAM_ROLE), ident))
        cur.execute(
            sql.SQL("GRANT ALL PRIVILEGES ON DATABASE {} TO {}").format(sql.Identifier(database), ident)
        )
        cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(ident))
        for kinds in (("r", "p", "v", "m"), ("S",)):  # tables first: their sequences move with them
            cur.execute(
                "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = ANY(%s) AND c.relowner = "
                "(SELECT oid FROM pg_roles WHERE rolname = current_user) ORDER BY c.relname",
                (list(kinds),),
            )
            for name, kind in cur.fetchall():
                cur.execute(
                    sql.SQL("ALTER {} {} OWNER TO {}").format(
                        sql.SQL(_ALTER[kind]), sql.Identifier("public", name), ident
                    )
                )
                done.append(f"{_ALTER[kind].lower()} {name} now owned by {role}")
    return done


def _require(name: str, value: str | None) -> str:
    if not value:
        raise ConfigError(f"{name} is not set (needed by db-setup).")
    return value


def run(env: Mapping[str, str], echo: Any = print) -> None:
    """Connect as the master (secret read now) to ``DAGSTER_PG_DB`` and set up ``DAGSTER_PG_USERNAME``."""
    import psycopg2

    pg, setup = load(PostgresSettings, environ=env), load(DatabaseSetupSettings, environ=env)
    host, database = _require("DAGSTER_PG_HOST", pg.host), _require("DAGSTER_PG_DB", pg.db)
    role = validate_role_name(_require("DAGSTER_PG_USERNAME", pg.username))
    port = pg.port
    user, password = master_credentials(_require("DAGOPS_DB_MASTER_SECRET_ARN", setup.master_secret_arn))
    try:
        conn = psycopg2.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            dbname=database,
            connect_timeout=10,
            # RDS forces TLS (rds.force_ssl); "prefer" (the default) also reaches a local server without it.
            sslmode=setup.sslmode,
        )
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DagopsError(f"Cannot connect to {host}:{port}/{database} as the master user: {first}") from None
    try:
        done = ensure_app_role(conn, role)
    except psycopg2.Error as exc:
        raise DagopsError(f"Setting up database role {role!r} failed: {str(exc).strip()}") from None
    finally:
        conn.close()
    echo(f"Database role {role!r} on {host}:{port}/{database} is ready ({'; '.join(done) or 'no change'}).")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(os.environ)
    except DagopsError as exc:
        print(f"db-setup: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
