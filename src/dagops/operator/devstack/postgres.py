"""A local PostgreSQL server: found on PATH or in /usr/lib/postgresql, run as ``postgres`` when root.

Used by `invoke dev` (as a supervised child in the foreground) and by the integration tests (started and
stopped around a test module with ``pg_ctl``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError
from dagops.operator.proc import run_checked

SERVICE_USER = "postgres"


def find_bin_dir() -> Path | None:
    """The folder holding initdb, postgres and pg_ctl, or None when PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    # Debian/Ubuntu keep the server binaries off PATH; the newest version wins.
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()],
    )
    candidates += [Path(p) for p in reversed(versions)]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "postgres", "pg_ctl")):
            return folder
    return None


def _run_as() -> str | None:
    """The user the server must run as: ``postgres`` when we are root (postgres refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise DagopsError(
            f"Running as root, PostgreSQL needs a '{SERVICE_USER}' user to run as; "
            "create it or run as a normal user."
        ) from None
    return SERVICE_USER


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in ``data_dir``, listening on ``host:port`` with trust auth for loopback."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = "dagster"
    password: str = "dagster"  # noqa: S105 (trust auth on loopback)
    db: str = "dagster"
    bin_dir: Path | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.bin_dir is None:
            self.bin_dir = find_bin_dir()
        if self.bin_dir is None:
            raise DagopsError("PostgreSQL server binaries (initdb, postgres, pg_ctl) were not found.")
        self.run_as = _run_as()

    # Commands ------------------------------------------------------------------------------
    def _tool(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra ``subprocess`` arguments that run a server tool as the right user."""
        if self.run_as is None:
            return {}
        return {"user": self.run_as, "group": self.run_as, "extra_groups": []}

    def server_argv(self) -> list[str]:
        """The foreground server command (logs to stdout, no Unix socket: loopback TCP only)."""
        return [
            self._tool("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            self.host,
            "-k",
            "",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
        ]

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def ensure_initialized(self) -> bool:
        """Run initdb once (superuser ``user``, trust auth); return True when it did."""
        if self.initialized:
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.data_dir)
        run_checked(
            [
                self._tool("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            f"initdb failed for {self.data_dir}",
            **self.popen_kwargs(),
        )
        return True

    def _hand_over(self, path: Path) -> None:
        """As root: give the data dir to the service user and make sure it can reach it."""
        if self.run_as is None:
            return
        info = pwd.getpwnam(self.run_as)
        os.chown(path, info.pw_uid, info.pw_gid)
        os.chmod(path, 0o700)
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise DagopsError(
                    f"PostgreSQL runs as '{self.run_as}', who cannot enter {parent}; "
                    f"use a state directory it can reach (DAGOPS_STATE_DIR) or `chmod o+x {parent}`."
                )

    def start(self, log_file: Path, timeout: float = 60.0) -> None:
        """Start in the background with ``pg_ctl start`` (the test fixtures' way); create the database."""
        self.ensure_initialized()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch()
        self._chown_file(log_file)
        opts = " ".join(f"'{a}'" if a == "" else a for a in self.server_argv()[3:])
        proc = subprocess.run(
            [
                self._tool("pg_ctl"),
                "start",
                "-w",
                "-t",
                str(int(timeout)),
                "-D",
                str(self.data_dir),
                "-l",
                str(log_file),
                "-o",
                opts,
            ],
            capture_output=True,
            text=True,
            check=False,
            **self.popen_kwargs(),
        )
        if proc.returncode != 0:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] or [proc.stderr.strip()]
            raise DagopsError(f"PostgreSQL did not start on port {self.port}: {tail[0]}")
        self.wait_ready(timeout)
        self.create_database()

    def _chown_file(self, path: Path) -> None:
        if self.run_as is not None:
            info = pwd.getpwnam(self.run_as)
            os.chown(path, info.pw_uid, info.pw_gid)

    def stop(self, timeout: float = 30.0) -> None:
        """``pg_ctl stop -m fast``: roll back open transactions, then shut down. A no-op when not running."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run(
            [
                self._tool("pg_ctl"),
                "stop",
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "-D",
                str(self.data_dir),
            ],
            capture_output=True,
            check=False,
            **self.popen_kwargs(),
        )

    @property
    def database(self) -> PostgresDatabase:
        return PostgresDatabase(self.host, self.port, self.user, self.password, self.db)

    def wait_ready(self, timeout: float = 60.0, alive: Any = None) -> None:
        self.database.wait_ready(timeout, alive)

    def create_database(self) -> None:
        self.database.create_database()

    def connect(self, db: str | None = None) -> Any:
        return self.database.connect(db)

    @property
    def url(self) -> str:
        return self.database.url


@dataclass(frozen=True)
class PostgresDatabase:
    """Where Dagster's storage lives: a local server of ours, a container, or any reachable Postgres."""

    host: str
    port: int
    user: str
    password: str
    db: str

    def connect(self, db: str | None = None) -> Any:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=db or self.db,
            connect_timeout=3,
        )

    def is_ready(self) -> bool:
        import psycopg2

        try:
            self.connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    def wait_ready(self, timeout: float = 60.0, alive: Any = None) -> None:
        """Wait until the server accepts connections; ``alive()`` False (the process died) stops early."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_ready():
                return
            if alive is not None and not alive():
                raise DagopsError(f"PostgreSQL exited during start-up ({self.host}:{self.port}).")
            time.sleep(0.2)
        raise DagopsError(
            f"PostgreSQL did not accept connections at {self.host}:{self.port} within {timeout:.0f} s."
        )

    def create_database(self) -> None:
        """Create ``db`` unless it exists."""
        from psycopg2 import sql

        conn = self.connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db)))
        finally:
            conn.close()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.db}"
