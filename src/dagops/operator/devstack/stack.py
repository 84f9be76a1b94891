"""The embedded local stack: Postgres, S3 (moto), a sync agent + code server per location, webserver, daemon.

``up()`` starts everything in order and supervises it until Ctrl-C / SIGTERM (``invoke stop``);
``start_detached()`` runs ``up()`` in a background process and returns once the UI answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from dagops import registry, workspace
from dagops.errors import DagopsError
from dagops.operator.devstack import dagster_home, graphql
from dagops.operator.devstack import s3 as local_s3
from dagops.operator.devstack.config import DevConfig, check_ports_free
from dagops.operator.devstack.postgres import LocalPostgres, PostgresDatabase, find_bin_dir
from dagops.operator.devstack.supervisor import Child, Supervisor
from dagops.operator.proc import run_checked
from dagops.ports import port_open

STATE_FILE = "stack.json"
PID_FILE = "supervisor.pid"
# Environment a developer's shell may carry that must not reach the local stack (real AWS accounts).
_SCRUBBED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


def _bin(name: str) -> str:
    """A console script of this interpreter's environment (the venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DagopsError(f"{name} was not found; install the project's dependencies (uv sync).")
    return found


# State files ------------------------------------------------------------------------------------
def read_state(config: DevConfig) -> dict[str, Any]:
    path = config.run_dir / STATE_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_state(config: DevConfig, state: dict[str, Any]) -> None:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = config.run_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, config.run_dir / STATE_FILE)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def running_pid(config: DevConfig) -> int | None:
    """The pid of a running supervisor of this state directory, or None."""
    try:
        pid = int((config.run_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def wake_agents(config: DevConfig, names: list[str]) -> list[str]:
    """Make the running embedded stack's sync agents of ``names`` poll now (SIGUSR1); the names woken.

    The local form of the S3 event path: a publish is seen at once rather than at the next poll.
    """
    if running_pid(config) is None:
        return []
    components = read_state(config).get("components") or {}
    woken = []
    for name in names:
        pid = components.get(f"sync-{name}")
        if isinstance(pid, int) and pid_alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR1)
                woken.append(name)
    return woken


def _clean_leftovers(config: DevConfig, sup: Supervisor) -> None:
    """After a supervisor that was killed: stop the children it left behind, and a Postgres still running."""
    for name, pid in (read_state(config).get("components") or {}).items():
        if pid_alive(pid):
            sup.say(f"stopping {name} (pid {pid}) left behind by a previous run")
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
    if (config.postgres_dir / "postmaster.pid").exists() and find_bin_dir():
        LocalPostgres(config.postgres_dir, config.postgres_port).stop()


# The stack --------------------------------------------------------------------------------------
class _Stack:
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

    def save_state(self) -> None:
        self.state["components"] = self.sup.pids()
        _write_state(self.config, self.state)

    def code_servers(self) -> list[tuple[str, str, int]]:
        base = self.config.code_server_base_port
        return [(loc.name, self.config.host, base + i) for i, loc in enumerate(self.locations)]

    def env(self) -> dict[str, str]:
        """Environment of every Dagster process: the README's container settings, for the local stack."""
        cfg = self.config
        # No AWS setting of the developer's shell (keys, tokens, profiles): the stack has its own.
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("AWS_")}
        env.update(local_s3.LOCAL_CREDENTIALS)
        env.update(
            {
                "DAGSTER_HOME": str(cfg.dagster_home),
                "DAGSTER_S3_BUCKET": cfg.bucket,
                "AWS_ENDPOINT_URL": cfg.s3_endpoint,
                "DAGOPS_ENV": "local",
                "DAGOPS_CODE_DIR": str(cfg.code_dir),
                "DAGOPS_SYNC_INTERVAL": str(cfg.sync_interval),
                "DAGOPS_SYNC_STANDBY": "true",  # a change loads without importing dagster again
                "DAGOPS_WEBSERVER_URL": cfg.ui_url,
                "DAGOPS_CODE_LOCATIONS": ",".join(f"{n}={h}:{p}" for n, h, p in self.code_servers()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.postgres is not None:
            env.update(
                {
                    "DAGSTER_PG_HOST": self.postgres.host,
                    "DAGSTER_PG_PORT": str(self.postgres.port),
                    "DAGSTER_PG_DB": self.postgres.db,
                    "DAGSTER_PG_USERNAME": self.postgres.user,
                    "DAGSTER_PG_PASSWORD": self.postgres.password,
                }
            )
        return env

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

    def start_postgres(self) -> None:
        cfg = self.config
        pg = self.local_pg
        assert pg is not None
        if pg.ensure_initialized():
            self.sup.say(f"initialized a new Postgres cluster in {pg.data_dir}")
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
        self.sup.say(f"postgres ready on {pg.host}:{pg.port} (database {pg.db})")

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
        self.sup.say("creating Dagster's tables in the new database")
        run_checked(
            [sys.executable, "-m", "dagster", "instance", "migrate"],
            "Creating Dagster's tables failed",
            env=self.env(),
        )

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
        self.sup.say(f"s3 ready at {cfg.s3_endpoint} (bucket {cfg.bucket})")

    def restore_s3(self) -> None:
        """After the S3 server restarted (its objects lived in memory): bucket and code again."""
        local_s3.wait_ready(self.config.s3_endpoint, timeout=60)
        local_s3.ensure_bucket(local_s3.client(self.config.s3_endpoint), self.config.bucket)
        self.publish()

    def publish(self) -> None:
        from dagops.publish import publish_location

        client = local_s3.client(self.config.s3_endpoint)
        for loc in self.locations:
            result = publish_location(
                client, self.config.bucket, loc.name, loc.path(self.config.root), loc.entry
            )
            self.sup.say(f"published {result.summary()}")
            self.state["locations"][loc.name] = {
                "source": str(loc.path(self.config.root)),
                "revision": result.revision,
            }

    def start_sync_agents(self) -> None:
        cfg = self.config
        env = self.env()
        for name, host, port in self.code_servers():
            argv = [
                sys.executable,
                "-m",
                "dagops.runtime.sync",
                "run",
                "--location",
                name,
                "--code-dir",
                str(cfg.code_dir),
                "--interval",
                str(cfg.sync_interval),
                "--grpc-host",
                host,
                "--grpc-port",
                str(port),
                "--webserver-url",
                cfg.ui_url,
            ]
            self.sup.start(Child(f"sync-{name}", argv, env={**env, "DAGOPS_LOCATION": name}, tier=2))
            self.state["locations"].setdefault(name, {})["grpc"] = f"{host}:{port}"

    def wait_code_servers(self, deadline: float) -> None:
        """Wait for every code server to listen, so the webserver's first load finds them (warn, not fail)."""
        pending = {name: (host, port) for name, host, port in self.code_servers()}
        while pending and time.monotonic() < deadline:
            for name, (host, port) in list(pending.items()):
                if port_open(host, port):
                    del pending[name]
            time.sleep(0.2)
        for name in pending:
            self.sup.say(
                f"warning: the code server of {name} is not up yet "
                f"(see {self.config.logs_dir / f'sync-{name}.log'})"
            )

    def start_webserver(self) -> None:
        cfg = self.config
        workspace_yaml = str(cfg.dagster_home / "workspace.yaml")
        self.sup.start(
            Child(
                "webserver",
                [_bin("dagster-webserver"), "-h", cfg.host, "-p", str(cfg.ui_port), "-w", workspace_yaml],
                env=self.env(),
                cwd=cfg.dagster_home,
                tier=3,
            )
        )

    def start_daemon(self) -> None:
        cfg = self.config
        workspace_yaml = str(cfg.dagster_home / "workspace.yaml")
        env = self.env()
        self.sup.start(
            Child(
                "daemon",
                [_bin("dagster-daemon"), "run", "-w", workspace_yaml],
                env=env,
                cwd=cfg.dagster_home,
                tier=3,
            )
        )

    def wait_ui(self, deadline: float) -> None:
        cfg = self.config
        while graphql.server_info(cfg.ui_url) is None:
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
            graphql.reload_workspace(cfg.ui_url)
        # A location can still miss its code server (a slow first sync): reload it once its server is up,
        # as the sync agent does after every swap. Locations that still fail are reported (and shown in
        # the UI with their error).
        servers = {name: (host, port) for name, host, port in self.code_servers()}
        reloads: dict[str, int] = {}
        while time.monotonic() < deadline:
            try:
                states = graphql.locations(cfg.ui_url)
            except DagopsError:
                time.sleep(0.5)
                continue
            failing = {n: s for n, s in states.items() if s["loadStatus"] != "LOADED" or s["error"]}
            retry = [n for n in failing if n in servers and reloads.get(n, 0) < 3 and port_open(*servers[n])]
            if not retry and all(s["loadStatus"] == "LOADED" for s in states.values()):
                for name, s in failing.items():
                    self.sup.say(f"warning: code location {name} failed to load: {s['error'].strip()[:300]}")
                return
            for name in retry:
                reloads[name] = reloads.get(name, 0) + 1
                with contextlib.suppress(DagopsError):
                    graphql.reload_location(cfg.ui_url, name)
            time.sleep(0.5)

    # Whole run ------------------------------------------------------------------------------
    def run(self, wait_forever: bool = True) -> None:
        cfg = self.config
        begin = time.monotonic()
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
        self.sup.say(f"starting the local stack (state in {cfg.state})")
        if cfg.storage == "sqlite":
            self.sup.say("using SQLite storage in DAGSTER_HOME (dev.storage is sqlite)")
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
            self.sup.say(
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
            self.sup.say(
                "PostgreSQL binaries not found (PATH, /usr/lib/postgresql/*/bin): using SQLite storage"
            )
        self.state["storage"] = "postgres" if self.postgres else "sqlite"
        if cfg.s3_url:
            local_s3.wait_ready(cfg.s3_url, timeout=30)
            local_s3.ensure_bucket(local_s3.client(cfg.s3_url), cfg.bucket)
            self.sup.say(f"using the S3 endpoint at {cfg.s3_url} (bucket {cfg.bucket})")
        else:
            self.start_s3()
        self.publish()
        dagster_home.write(
            cfg.dagster_home,
            servers=self.code_servers(),
            max_concurrent_runs=cfg.max_concurrent_runs,
            postgres=None
            if self.postgres is None
            else {
                "host": self.postgres.host,
                "port": self.postgres.port,
                "user": self.postgres.user,
                "password": self.postgres.password,
                "db": self.postgres.db,
            },
        )
        deadline = begin + cfg.startup_timeout
        self.create_dagster_tables()
        self.start_sync_agents()
        # The webserver takes as long to start as a code server, so it starts now, on an empty workspace
        # (no failed first load while the code servers come up); the real workspace.yaml is written, and
        # reloaded, once they listen. The daemon starts then.
        workspace_yaml = cfg.dagster_home / "workspace.yaml"
        workspace_yaml.write_text(workspace.render([]))
        self.start_webserver()
        self.wait_code_servers(deadline)
        workspace_yaml.write_text(workspace.render(self.code_servers()))
        self.start_daemon()
        self.wait_ui(deadline)
        took = time.monotonic() - begin
        self.state.update(status="ready", ready_seconds=round(took, 2))
        self.save_state()
        self.sup.say(f"Dagster UI: {cfg.ui_url}  (ready in {took:.1f} s; Ctrl-C or `invoke stop` to stop)")
        if wait_forever:
            # Follow the registry: `invoke repo.add/remove` start or stop a location while the stack runs.
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
            self.sup.say("not watching code_locations/ (dev.watch is false): `invoke dags.deploy` publishes")
            return
        from dagops.operator.code_watch import for_stack as code_watch_for_stack

        code_watch_for_stack(self, on_registry).start(self.sup.stopping)

    def shutdown(self) -> None:
        self.state["status"] = "stopping"
        self.save_state()
        self.sup.stop_all()
        self.sup.say("stopped")
        for name in (PID_FILE, STATE_FILE):
            (self.config.run_dir / name).unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM (``invoke stop``) and SIGINT (Ctrl-C) both end up as KeyboardInterrupt in the main thread."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def up(config: DevConfig, console: IO[str] | None = sys.stdout) -> None:
    """Run the embedded stack in this process until Ctrl-C or SIGTERM; DagopsError if it cannot start."""
    pid = running_pid(config)
    if pid is not None:
        url = read_state(config).get("ui_url", config.ui_url)
        raise DagopsError(
            f"The local stack is already running (pid {pid}, UI {url}); `invoke stop` stops it."
        )
    stack = _Stack(config, console)
    _clean_leftovers(config, stack.sup)
    with _signals_raise():
        try:
            stack.run()
        except KeyboardInterrupt:
            stack.sup.say("stopping (signal received)")
        except DagopsError as exc:
            stack.state.update(status="failed", error=str(exc))
            stack.save_state()
            stack.sup.say(f"error: {exc}")
            stack.sup.stop_all()
            (config.run_dir / PID_FILE).unlink(missing_ok=True)
            raise
        except BaseException as exc:
            stack.state.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            stack.shutdown()
            raise
        stack.shutdown()


def start_detached(config: DevConfig, console: IO[str] = sys.stdout) -> dict[str, Any]:
    """Start the stack in a background process; return its state once the UI answers."""
    pid = running_pid(config)
    if pid is not None:
        url = read_state(config).get("ui_url", config.ui_url)
        raise DagopsError(
            f"The local stack is already running (pid {pid}, UI {url}); `invoke stop` stops it."
        )
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    (config.run_dir / STATE_FILE).unlink(missing_ok=True)
    out_path = config.logs_dir / "supervisor.out"
    begin = time.monotonic()
    with open(out_path, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagops.operator.devstack",
                "up",
                "--quiet",
                "--config",
                json.dumps(config.to_dict()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=config.root,
        )
    console.write(f"starting the local stack in the background (pid {proc.pid}); logs in {config.logs_dir}\n")
    console.flush()
    deadline = begin + config.startup_timeout + 30
    while time.monotonic() < deadline:
        state = read_state(config)
        if state.get("pid") == proc.pid and state.get("status") == "ready":
            console.write(f"Dagster UI: {state['ui_url']}  (ready in {time.monotonic() - begin:.1f} s)\n")
            console.flush()
            return state
        code = proc.poll()
        if code is not None:
            error = state.get("error") if state.get("pid") == proc.pid else None
            if not error:
                lines = out_path.read_text(errors="replace").strip().splitlines()
                error = lines[-1] if lines else f"exit code {code}"
            raise DagopsError(f"The local stack did not start: {error}")
        time.sleep(0.3)
    stop(config)
    raise DagopsError(
        f"The local stack did not become ready within {config.startup_timeout:.0f} s; see {config.logs_dir}."
    )


def stop(config: DevConfig, console: IO[str] = sys.stdout) -> bool:
    """Stop a running stack: SIGTERM to its supervisor, SIGKILL to what remains. False if none ran."""
    pid = running_pid(config)
    if pid is None:
        return False
    console.write(f"stopping the local stack (supervisor pid {pid})\n")
    console.flush()
    components = read_state(config).get("components") or {}
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + config.stop_timeout * 3 + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        console.write("the supervisor did not stop in time; killing it and its children\n")
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        for child_pid in components.values():
            with contextlib.suppress(OSError):
                os.killpg(child_pid, signal.SIGKILL)
        if (config.postgres_dir / "postmaster.pid").exists() and find_bin_dir():
            LocalPostgres(config.postgres_dir, config.postgres_port).stop()
        for name in (PID_FILE, STATE_FILE):
            (config.run_dir / name).unlink(missing_ok=True)
    console.write("stopped\n")
    return True


def reset(config: DevConfig, console: IO[str] = sys.stdout) -> list[Path]:
    """Stop the stack and wipe its database, synced code and DAGSTER_HOME; return what was removed."""
    stop(config, console)
    removed = []
    for folder in (config.postgres_dir, config.code_dir, config.dagster_home):
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def status(config: DevConfig) -> list[str]:
    """Human-readable state of the embedded stack: supervisor, components, UI, each location's sync status."""
    pid = running_pid(config)
    if pid is None:
        return [f"the local stack is not running (state in {config.state})"]
    state = read_state(config)
    took = state.get("ready_seconds")
    answers = "answers" if state.get("ui_url") and graphql.server_info(state["ui_url"]) else "no answer"
    lines = [
        f"supervisor  pid {pid}, {state.get('status', '?')}"
        + (f" (ready in {took} s)" if took is not None else "")
        + f", storage {state.get('storage', '?')}",
        f"ui          {state.get('ui_url')} ({answers})",
        f"s3          {state.get('s3_endpoint')} bucket {state.get('bucket')}",
    ]
    for name, child_pid in sorted((state.get("components") or {}).items()):
        lines.append(f"{name:<11} pid {child_pid} {'running' if pid_alive(child_pid) else 'NOT RUNNING'}")
    for name in state.get("locations") or {}:
        try:
            data = json.loads((config.code_dir / name / "status.json").read_text())
        except (OSError, ValueError):
            lines.append(f"location {name}: no sync status yet")
            continue
        revision = (data.get("revision") or "")[:12] or "none"
        line = f"location {name}: {data.get('state')}, revision {revision}, last poll {data.get('last_poll')}"
        if data.get("last_error"):
            line += f", error: {data['last_error']}"
        lines.append(line)
    return lines
