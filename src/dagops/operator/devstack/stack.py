"""The embedded local stack, run in this process: Postgres, S3 (moto), a sync agent + code server per
location, webserver, daemon, in that order, under one :class:`Supervisor`.

:meth:`Stack.run` starts everything and, by default, follows the registry and the project's code until
the supervisor stops. The watchers (``dagops.operator.registry_watch``, ``dagops.operator.code_watch``)
drive a running stack through its public methods. Starting and stopping it from the command line:
``dagops.operator.devstack.control``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dagops import registry, webserver, workspace
from dagops.errors import DagopsError
from dagops.operator.devstack import dagster_home, processes
from dagops.operator.devstack import s3 as local_s3
from dagops.operator.devstack.config import DevConfig, check_ports_free
from dagops.operator.devstack.postgres import LocalPostgres, PostgresDatabase, find_bin_dir
from dagops.operator.devstack.state import PID_FILE, remove_run_files, write_state
from dagops.operator.devstack.supervisor import Child, Supervisor
from dagops.operator.proc import run_checked
from dagops.ports import port_open

if TYPE_CHECKING:
    from dagops.publish import PublishResult


class Stack:
    def __init__(self, config: DevConfig, console: IO[str] | None) -> None:
        self.config = config
        self.sup = Supervisor(config.logs_dir, console, stop_timeout=config.stop_timeout)
        self.sup.on_change = self.save_state
        self.locations = registry.load(config.root)
        self.postgres: PostgresDatabase | None = None
        self.local_pg: LocalPostgres | None = None
        self.state: dict[str, Any] = {
            "pid": os.getpid(),
            "mode": "embedded",
            "status": "starting",
            "ui_url": config.ui_url,
            "s3_endpoint": config.s3_endpoint,
            "bucket": config.bucket,
            "state_dir": str(config.state),
            "started_at": time.time(),
            "locations": {},
            "components": {},
            "watch": config.watch,
        }

    def say(self, line: str) -> None:
        self.sup.say(line)

    def save_state(self) -> None:
        self.state["components"] = self.sup.pids()
        write_state(self.config, self.state)

    def code_servers(self) -> list[tuple[str, str, int]]:
        base = self.config.code_server_base_port
        return [(loc.name, self.config.host, base + i) for i, loc in enumerate(self.locations)]

    def env(self) -> dict[str, str]:
        """Environment of every Dagster process: the README's container settings, for the local stack."""
        return processes.dagster_env(self.config, self.code_servers(), self.postgres)

    # Steps ----------------------------------------------------------------------------------
    def check_ports(self, with_postgres: bool) -> None:
        cfg = self.config
        ports = {"Dagster UI": cfg.ui_port}
        if not cfg.s3_url:
            ports["S3 endpoint"] = cfg.s3_port
        if with_postgres:
            ports["Postgres"] = cfg.postgres_port
        for name, _host, port in self.code_servers():
            ports[f"code server of {name}"] = port
        if len(set(ports.values())) != len(ports):
            raise DagopsError(f"The local stack's ports overlap ({ports}); give each component its own port.")
        check_ports_free(cfg.host, ports)

    def prepare(self) -> Path | None:
        """Check the settings and ports, create the folders, record this process; the Postgres binaries
        to start a local server with (None: an external server, or SQLite)."""
        cfg = self.config
        bin_dir = None if cfg.postgres_host or cfg.storage == "sqlite" else find_bin_dir()
        if cfg.storage == "postgres" and not cfg.postgres_host and bin_dir is None:
            raise DagopsError(
                "Setting dev.storage is postgres, but no PostgreSQL server binaries were found "
                "(PATH, /usr/lib/postgresql/*/bin) and dev.postgres_host is not set."
            )
        self.check_ports(with_postgres=bin_dir is not None)
        for folder in (cfg.state, cfg.logs_dir, cfg.run_dir, cfg.code_dir, cfg.dagster_home):
            folder.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / PID_FILE).write_text(str(os.getpid()))
        self.save_state()
        return bin_dir

    def open_storage(self, bin_dir: Path | None) -> None:
        """SQLite, the Postgres at dev.postgres_host, or a local Postgres server started from ``bin_dir``."""
        cfg = self.config
        if cfg.storage == "sqlite":
            self.say("using SQLite storage in DAGSTER_HOME (dev.storage is sqlite)")
        elif cfg.postgres_host:
            self.postgres = PostgresDatabase(
                cfg.postgres_host,
                cfg.postgres_port,
                cfg.postgres_user,
                cfg.postgres_password,
                cfg.postgres_db,
            )
            self.postgres.wait_ready(timeout=30)
            self.postgres.create_database()
            self.say(
                f"using the Postgres at {cfg.postgres_host}:{cfg.postgres_port} (database {cfg.postgres_db})"
            )
        elif bin_dir is not None:
            self.local_pg = LocalPostgres(
                cfg.postgres_dir,
                cfg.postgres_port,
                host=cfg.host,
                user=cfg.postgres_user,
                password=cfg.postgres_password,
                db=cfg.postgres_db,
                bin_dir=bin_dir,
            )
            self.start_postgres()
            self.postgres = self.local_pg.database
        else:
            self.say("PostgreSQL binaries not found (PATH, /usr/lib/postgresql/*/bin): using SQLite storage")
        self.state["storage"] = "postgres" if self.postgres else "sqlite"

    def start_postgres(self) -> None:
        cfg = self.config
        pg = self.local_pg
        assert pg is not None
        if pg.ensure_initialized():
            self.say(f"initialized a new Postgres cluster in {pg.data_dir}")
        child = self.sup.start(
            Child(
                "postgres",
                pg.server_argv(),
                tier=0,
                restart=False,
                popen_kwargs=pg.popen_kwargs(),
                stop_hook=lambda: pg.stop(timeout=cfg.stop_timeout),
            )
        )
        try:
            pg.wait_ready(timeout=60, alive=child.alive)
            pg.create_database()
        except DagopsError as exc:
            raise DagopsError(f"{exc} See {cfg.logs_dir / 'postgres.log'}.") from None
        child.restart = True
        self.say(f"postgres ready on {pg.host}:{pg.port} (database {pg.db})")

    def create_dagster_tables(self) -> None:
        """Create Dagster's tables in a new database before its processes start.

        Otherwise the webserver, the daemon and the code servers all find an empty database at once and
        race to create the same tables (harmless, but Postgres logs a page of unique-key errors).
        """
        if self.postgres is None:
            return
        conn = self.postgres.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('public.runs') IS NOT NULL")
                row = cur.fetchone()
        finally:
            conn.close()
        if row and row[0]:
            return
        self.say("creating Dagster's tables in the new database")
        run_checked(
            [sys.executable, "-m", "dagster", "instance", "migrate"],
            "Creating Dagster's tables failed",
            env=self.env(),
        )

    def open_s3(self) -> None:
        """The S3 endpoint at dev.s3_url, or a local one started here; the bucket in either."""
        cfg = self.config
        if cfg.s3_url:
            local_s3.wait_ready(cfg.s3_url, timeout=30)
            local_s3.ensure_bucket(local_s3.client(cfg.s3_url), cfg.bucket)
            self.say(f"using the S3 endpoint at {cfg.s3_url} (bucket {cfg.bucket})")
        else:
            self.start_s3()

    def start_s3(self) -> None:
        cfg = self.config
        child = Child(
            "s3",
            local_s3.moto_argv(cfg.host, cfg.s3_port),
            env=self.env(),
            tier=1,
            restart=False,
            after_restart=self.restore_s3,
        )
        self.sup.start(child)
        try:
            local_s3.wait_ready(cfg.s3_endpoint, timeout=60, alive=child.alive)
        except DagopsError as exc:
            raise DagopsError(f"{exc} See {cfg.logs_dir / 's3.log'}.") from None
        local_s3.ensure_bucket(local_s3.client(cfg.s3_endpoint), cfg.bucket)
        child.restart = True
        self.say(f"s3 ready at {cfg.s3_endpoint} (bucket {cfg.bucket})")

    def restore_s3(self) -> None:
        """After the S3 server restarted (its objects lived in memory): bucket and code again."""
        local_s3.wait_ready(self.config.s3_endpoint, timeout=60)
        local_s3.ensure_bucket(local_s3.client(self.config.s3_endpoint), self.config.bucket)
        self.publish()

    def publish_location(self, loc: registry.Location) -> PublishResult:
        """Publish one location to the stack's S3, as `invoke dags.deploy` does."""
        from dagops.publish import publish_location

        client = local_s3.client(self.config.s3_endpoint)
        result = publish_location(client, self.config.bucket, loc.name, loc.path(self.config.root), loc.entry)
        self.say(f"published {result.summary()}")
        return result

    def publish(self) -> None:
        for loc in self.locations:
            result = self.publish_location(loc)
            self.state["locations"][loc.name] = {
                "source": str(loc.path(self.config.root)),
                "revision": result.revision,
            }

    def write_dagster_home(self) -> None:
        postgres = self.postgres
        dagster_home.write(
            self.config.dagster_home,
            servers=self.code_servers(),
            max_concurrent_runs=self.config.max_concurrent_runs,
            postgres=None
            if postgres is None
            else {
                "host": postgres.host,
                "port": postgres.port,
                "user": postgres.user,
                "password": postgres.password,
                "db": postgres.db,
            },
        )

    def start_sync_agent(self, name: str, host: str, port: int) -> None:
        """Start the sync agent of location ``name``; it serves the location's code on ``host:port``."""
        self.sup.start(processes.sync_agent(self.config, name, host, port, self.env()))

    def stop_sync_agent(self, name: str) -> None:
        """Stop the sync agent of location ``name`` and its code server."""
        self.sup.stop_child(f"sync-{name}", self.config.stop_timeout)

    def start_sync_agents(self) -> None:
        for name, host, port in self.code_servers():
            self.start_sync_agent(name, host, port)
            self.state["locations"].setdefault(name, {})["grpc"] = f"{host}:{port}"

    def serve(self, locations: list[registry.Location], servers: list[tuple[str, str, int]]) -> None:
        """Record the locations the stack now serves (after the registry changed) and their servers."""
        self.locations = locations
        grpc = {name: f"{host}:{port}" for name, host, port in servers}
        self.state["locations"] = {
            name: {**self.state["locations"].get(name, {}), "grpc": address} for name, address in grpc.items()
        }
        self.save_state()

    def wait_code_servers(self, deadline: float) -> None:
        """Wait for every code server to listen, so the webserver's first load finds them (warn, not fail)."""
        pending = {name: (host, port) for name, host, port in self.code_servers()}
        while pending and time.monotonic() < deadline:
            for name, (host, port) in list(pending.items()):
                if port_open(host, port):
                    del pending[name]
            time.sleep(0.2)
        for name in pending:
            self.say(
                f"warning: the code server of {name} is not up yet "
                f"(see {self.config.logs_dir / f'sync-{name}.log'})"
            )

    def start_webserver(self) -> None:
        self.sup.start(processes.webserver(self.config, self.env()))

    def start_daemon(self) -> None:
        self.sup.start(processes.daemon(self.config, self.env()))

    def start_dagster(self, deadline: float) -> None:
        """Sync agents (and their code servers), webserver and daemon; returns once the UI answers."""
        self.create_dagster_tables()
        self.start_sync_agents()
        # The webserver takes as long to start as a code server, so it starts now, on an empty workspace
        # (no failed first load while the code servers come up); the real workspace.yaml is written, and
        # reloaded, once they listen. The daemon starts then.
        workspace_yaml = self.config.dagster_home / "workspace.yaml"
        workspace_yaml.write_text(workspace.render([]))
        self.start_webserver()
        self.wait_code_servers(deadline)
        workspace_yaml.write_text(workspace.render(self.code_servers()))
        self.start_daemon()
        self.wait_ui(deadline)

    def wait_ui(self, deadline: float) -> None:
        cfg = self.config
        while webserver.server_info(cfg.ui_url) is None:
            web = self.sup.children["webserver"]
            if time.monotonic() > deadline:
                raise DagopsError(
                    f"The Dagster UI did not answer at {cfg.ui_url}; see {cfg.logs_dir / 'webserver.log'}."
                )
            if not web.alive() and web.restarts > 3:
                raise DagopsError(
                    f"The Dagster webserver keeps exiting; see {cfg.logs_dir / 'webserver.log'}."
                )
            time.sleep(0.25)
        with contextlib.suppress(DagopsError):
            webserver.reload_workspace(cfg.ui_url)
        self.reload_failed_locations(deadline)

    def reload_failed_locations(self, deadline: float) -> None:
        """A location can still miss its code server (a slow first sync): reload it once its server is up,
        as the sync agent does after every swap. Locations that still fail are reported (and shown in the
        UI with their error)."""
        ui_url = self.config.ui_url
        servers = {name: (host, port) for name, host, port in self.code_servers()}
        reloads: dict[str, int] = {}
        while time.monotonic() < deadline:
            try:
                states = webserver.locations(ui_url)
            except DagopsError:
                time.sleep(0.5)
                continue
            failing = {n: s for n, s in states.items() if s["loadStatus"] != "LOADED" or s["error"]}
            retry = [n for n in failing if n in servers and reloads.get(n, 0) < 3 and port_open(*servers[n])]
            if not retry and all(s["loadStatus"] == "LOADED" for s in states.values()):
                for name, s in failing.items():
                    self.say(f"warning: code location {name} failed to load: {s['error'].strip()[:300]}")
                return
            for name in retry:
                reloads[name] = reloads.get(name, 0) + 1
                with contextlib.suppress(DagopsError):
                    webserver.reload_location(ui_url, name)
            time.sleep(0.5)

    # Whole run ------------------------------------------------------------------------------
    def run(self, wait_forever: bool = True) -> None:
        cfg = self.config
        begin = time.monotonic()
        bin_dir = self.prepare()
        self.say(f"starting the local stack (state in {cfg.state})")
        self.open_storage(bin_dir)
        self.open_s3()
        self.publish()
        self.write_dagster_home()
        self.start_dagster(deadline=begin + cfg.startup_timeout)
        took = time.monotonic() - begin
        self.state.update(status="ready", ready_seconds=round(took, 2))
        self.save_state()
        self.say(f"Dagster UI: {cfg.ui_url}  (ready in {took:.1f} s; Ctrl-C or `invoke stop` to stop)")
        if wait_forever:
            self.follow()

    def follow(self) -> None:
        """Follow the registry (`invoke repo.add/remove` start or stop a location while the stack runs)
        and the project's code, until the supervisor stops."""
        from dagops.operator.registry_watch import for_stack

        # The code watcher (inotify) says when the registry file changed; a look every second stays.
        watcher = for_stack(self)
        registry_saved = threading.Event()
        self.start_code_watch(on_registry=registry_saved.set)
        while not self.sup.stopping.is_set():
            registry_saved.wait(1.0)
            registry_saved.clear()
            if not self.sup.stopping.is_set():
                watcher.poll()

    def start_code_watch(self, on_registry: Any = None) -> None:
        """Publish own code locations as their files are saved (dev.watch), until the stack stops."""
        if not self.config.watch:
            self.say("not watching code_locations/ (dev.watch is false): `invoke dags.deploy` publishes")
            return
        from dagops.operator.code_watch import for_stack as code_watch_for_stack

        code_watch_for_stack(self, on_registry).start(self.sup.stopping)

    def shutdown(self) -> None:
        self.state["status"] = "stopping"
        self.save_state()
        self.sup.stop_all()
        self.say("stopped")
        remove_run_files(self.config)
