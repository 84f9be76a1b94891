"""The local stack's parts that need no Dagster process: settings, ports, dagster.yaml, supervisor, logs."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from polling import wait_for

from dagops.errors import DagopsError
from dagops.operator.devstack import control, dagster_home, logs, state
from dagops.operator.devstack.config import DevConfig, check_ports_free, free_port, port_in_use
from dagops.operator.devstack.status import status
from dagops.operator.devstack.supervisor import Child, Supervisor
from dagops.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]


# Settings ---------------------------------------------------------------------------------------
def test_defaults_then_invoke_yaml_then_env_then_flags() -> None:
    assert DevConfig.resolve({}, environ={}).ui_port == 3000
    assert DevConfig.resolve({}, environ={}).sync_interval == 2.0
    from_yaml = DevConfig.resolve({"ui_port": 3100, "bucket": "b1"}, environ={})
    assert (from_yaml.ui_port, from_yaml.bucket) == (3100, "b1")
    env = {"DAGOPS_DEV_UI_PORT": "3200", "DAGOPS_DEV_SYNC_INTERVAL": "0.5"}
    from_env = DevConfig.resolve({"ui_port": 3100}, environ=env)
    assert (from_env.ui_port, from_env.sync_interval) == (3200, 0.5)
    assert DevConfig.resolve({"ui_port": 3100}, environ=env, ui_port=3300, mode=None).ui_port == 3300


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"ui_port": "web"}, "dev.ui_port"),
        ({"s3_port": 70000}, "TCP port"),
        ({"mode": "kubernetes"}, "dev.mode"),
        ({"storage": "disk"}, "dev.storage must be one of auto, postgres, sqlite"),
        ({"sync_interval": 0}, "positive"),
    ],
)
def test_bad_settings_are_one_clear_error(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(DagopsError, match=message):
        DevConfig.resolve(mapping, environ={})


def test_state_paths_follow_dagops_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DAGOPS_STATE_DIR", str(tmp_path))
    config = DevConfig.resolve({}, environ={})
    assert config.postgres_dir == tmp_path / "postgres"
    assert config.dagster_home == tmp_path / "dagster_home"
    assert config.logs_dir == tmp_path / "logs"


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        with pytest.raises(DagopsError, match=rf"Port {port} on 127.0.0.1 \(Dagster UI\) is already in use"):
            check_ports_free("127.0.0.1", {"S3": free_port(), "Dagster UI": port})
    assert not port_in_use("127.0.0.1", port)


def test_a_block_of_free_ports_lies_where_no_outgoing_connection_takes_its_source_port() -> None:
    # CI once saw "code server of manual" (base + 1) taken: a kernel-picked base sits in the ephemeral
    # range, where every client connection takes its source port.
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        block = free_ports(16)
        assert block == list(range(block[0], block[0] + 16))
        assert block[-1] < ephemeral
        assert not any(port_in_use("127.0.0.1", port) for port in block)
        assert free_port() < ephemeral


def test_invoke_dev_with_a_busy_port_exits_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            **os.environ,
            "DAGOPS_STATE_DIR": str(tmp_path),
            "DAGOPS_DEV_UI_PORT": str(port),
            "DAGOPS_DEV_S3_PORT": str(free_port()),
            "DAGOPS_DEV_POSTGRES_PORT": str(free_port()),
            "DAGOPS_DEV_CODE_SERVER_BASE_PORT": str(free_ports(16)[0]),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "invoke", "dev", "--mode", "embedded"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: Port {port} on 127.0.0.1 (Dagster UI) is already in use; stop what uses it "
        "or choose another port (dev.* in invoke.yaml or DAGOPS_DEV_* variables)."
    ]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "postgres").exists()


# dagster.yaml -----------------------------------------------------------------------------------
def test_dagster_yaml_with_postgres() -> None:
    config = dagster_home.instance_config(
        compute_logs_dir=Path("/x/logs"),
        max_concurrent_runs=3,
        postgres={"host": "127.0.0.1", "port": 5433, "user": "u", "password": "p", "db": "d"},
    )
    assert "storage" not in config
    for key, cls in (
        ("run_storage", "PingingPostgresRunStorage"),
        ("event_log_storage", "PingingPostgresEventLogStorage"),
        ("schedule_storage", "PingingPostgresScheduleStorage"),
    ):
        assert config[key]["module"] == "dagops.runtime.pg_storage"
        assert config[key]["class"] == cls
        assert config[key]["config"]["postgres_db"] == {
            "hostname": "127.0.0.1", "port": 5433, "username": "u", "password": "p", "db_name": "d",
            "scheme": "postgresql+psycopg2",
        }  # fmt: skip
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 3
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"
    assert config["run_monitoring"]["enabled"] is True
    assert config["telemetry"]["enabled"] is False


def test_dagster_accepts_the_written_instance_and_workspace(tmp_path: Path) -> None:
    """SQLite fallback: Dagster itself loads the instance we write (queue, launcher, compute logs)."""
    dagster_yaml, workspace_yaml = dagster_home.write(
        tmp_path, servers=[("main", "127.0.0.1", 4000), ("other", "127.0.0.1", 4001)],
        max_concurrent_runs=2, postgres=None,
    )  # fmt: skip
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert instance.run_monitoring_enabled
    finally:
        instance.dispose()
    servers = yaml.safe_load(workspace_yaml.read_text())["load_from"]
    assert [s["grpc_server"]["port"] for s in servers] == [4000, 4001]
    assert dagster_yaml.is_file()


# Supervisor -------------------------------------------------------------------------------------
def _python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def test_children_log_with_prefix_to_console_and_file(tmp_path: Path) -> None:
    console = io.StringIO()
    sup = Supervisor(tmp_path, console, stop_timeout=5)
    child = sup.start(Child("web", _python("print('hello'); print('world')"), restart=False))
    wait_for(
        lambda: child.proc is not None and child.proc.poll() is not None, 20, "web to exit", interval=0.05
    )
    wait_for(lambda: "world" in console.getvalue(), 20, "world on the console", interval=0.05)
    sup.stop_all()
    assert "web       | hello\nweb       | world\n" in console.getvalue()
    assert (tmp_path / "web.log").read_text() == "hello\nworld\n"


def test_a_dead_child_is_restarted_with_backoff(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    sup = Supervisor(tmp_path, None, stop_timeout=5)
    code = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"
    child = sup.start(Child("flaky", _python(code)))
    wait_for(
        lambda: marker.exists() and len(marker.read_text()) >= 3, 30, "three starts of flaky", interval=0.05
    )
    sup.stop_all()
    assert child.restarts >= 2
    log = (tmp_path / "supervisor.log").read_text()
    assert "flaky exited with code 3" in log
    assert "restarting in 1 s" in log and "restarting in 2 s" in log


def test_stop_escalates_to_sigkill_and_stops_in_tier_order(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path, None, stop_timeout=1)
    stubborn = _python(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up'); time.sleep(60)"
    )
    db = sup.start(Child("db", _python("print('up'); import time; time.sleep(60)"), tier=0))
    app = sup.start(Child("app", stubborn, tier=5))
    wait_for(
        lambda: "up" in (tmp_path / "app.log").read_text() if (tmp_path / "app.log").exists() else False,
        20,
        "app to start",
        interval=0.05,
    )
    started = time.monotonic()
    sup.stop_all()
    assert time.monotonic() - started < 10
    assert app.proc is not None and app.proc.returncode == -9
    assert db.proc is not None and db.proc.returncode == -15
    log = (tmp_path / "supervisor.log").read_text()
    assert log.index("stopping app") < log.index("stopping db")
    assert "app did not stop within 1 s; killing it" in log


def test_stop_child_stops_its_session_and_forgets_it(tmp_path: Path) -> None:
    """The registry watcher's way to stop one location's agent: the agent, what it started, and no restart."""
    pids = tmp_path / "grandchild"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pids)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(120)\n"
    )
    sup = Supervisor(tmp_path, None, stop_timeout=5)
    changes: list[str] = []
    other = sup.start(Child("other", _python("import time; time.sleep(120)")))
    agent = sup.start(Child("agent", _python(code)))
    sup.on_change = lambda: changes.append("changed")
    wait_for(
        lambda: pids.exists() and pids.read_text().strip() != "", 20, "the grandchild's pid", interval=0.05
    )
    sup.stop_child("agent", timeout=5)
    assert agent.proc is not None and agent.proc.returncode == -15 and not agent.restart
    assert list(sup.children) == ["other"] and other.alive()
    assert changes == ["changed"]
    wait_for(lambda: not state.pid_alive(int(pids.read_text())), 5, "the grandchild to end", interval=0.05)
    sup.stop_child("missing", timeout=5)  # a name it does not know: nothing happens
    assert changes == ["changed"]
    sup.stop_all()


# Logs and state ---------------------------------------------------------------------------------
def test_logs_show_the_tail_of_each_component(tmp_path: Path) -> None:
    (tmp_path / "s3.log").write_text("".join(f"s{i}\n" for i in range(5)))
    (tmp_path / "webserver.log").write_text("w0\nw1\n")
    out = io.StringIO()
    logs.show(tmp_path, lines=2, out=out)
    assert out.getvalue() == "s3        | s3\ns3        | s4\nwebserver | w0\nwebserver | w1\n"
    out = io.StringIO()
    logs.show(tmp_path, component="webserver", lines=1, out=out)
    assert out.getvalue() == "webserver | w1\n"
    with pytest.raises(DagopsError, match="No log for component 'daemon'; known: s3, webserver"):
        logs.show(tmp_path, component="daemon")
    out = io.StringIO()
    logs.show(tmp_path, component="webserver", lines=0, out=out)
    assert out.getvalue() == ""
    with pytest.raises(DagopsError, match=r"--lines must be a whole number of lines \(0 or more\), got -1"):
        logs.show(tmp_path, lines=-1)


@pytest.mark.parametrize(("text", "count"), [("0", 0), ("+7", 7), (" 12 ", 12)])
def test_lines_flag_is_a_count(text: str, count: int) -> None:
    assert logs.parse_lines(text) == count


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "", "\u00b2"])
def test_lines_flag_refuses_what_is_not_a_count(text: str) -> None:
    with pytest.raises(DagopsError, match="--lines must be a whole number of lines"):
        logs.parse_lines(text)


def test_stop_and_status_without_a_running_stack(tmp_path: Path) -> None:
    config = DevConfig.resolve({"state_dir": str(tmp_path)}, environ={})
    config.run_dir.mkdir(parents=True)
    # A pidfile left by a supervisor that is gone (a pid that cannot be alive).
    (config.run_dir / state.PID_FILE).write_text("999999999")
    assert state.running_pid(config) is None
    assert control.stop(config, io.StringIO()) is False
    assert status(config) == [f"the local stack is not running (state in {tmp_path})"]


def test_reset_wipes_database_code_and_home_but_keeps_logs(tmp_path: Path) -> None:
    config = DevConfig.resolve({"state_dir": str(tmp_path)}, environ={})
    for folder in (config.postgres_dir, config.code_dir / "main", config.dagster_home, config.logs_dir):
        folder.mkdir(parents=True)
        (folder / "f").write_text("x")
    removed = control.reset(config, io.StringIO())
    assert sorted(removed) == sorted([config.postgres_dir, config.code_dir, config.dagster_home])
    assert not config.postgres_dir.exists() and not config.code_dir.exists()
    assert (config.logs_dir / "f").exists()


def test_a_restart_clears_what_the_dead_child_left_in_its_session(tmp_path: Path) -> None:
    """A sync agent that dies leaves its code server holding the port: the restart removes it first."""
    pids = tmp_path / "grandchildren"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pids)!r}, 'a').write(f'{{p.pid}}\\n')\n"
        "time.sleep(0.5)\n"
        "raise SystemExit(1)\n"
    )
    sup = Supervisor(tmp_path, None, stop_timeout=5)
    sup.start(Child("agent", _python(code)))
    wait_for(
        lambda: pids.exists() and len(pids.read_text().split()) >= 2, 30, "a restart of agent", interval=0.05
    )
    first = int(pids.read_text().split()[0])
    wait_for(lambda: not state.pid_alive(first), 10, "the first grandchild to end", interval=0.05)
    sup.stop_all()
    # SIGKILL is delivered asynchronously: give the kernel a moment to finish them.
    wait_for(
        lambda: all(not state.pid_alive(int(p)) for p in pids.read_text().split()),
        5,
        "every grandchild to end",
        interval=0.05,
    )


# Compose mode -----------------------------------------------------------------------------------
# A stand-in `docker` on PATH: `docker info` answers when FAKE_DOCKER_ENGINE=up, `docker compose ...`
# when FAKE_DOCKER_COMPOSE=yes; without the plugin it fails as docker 28 does. Each call is logged.
FAKE_DOCKER = """#!{python}
import os, sys
with open(os.environ["FAKE_DOCKER_LOG"], "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:1] == ["info"] and os.environ.get("FAKE_DOCKER_ENGINE") != "up":
    sys.exit("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
if args[:1] == ["compose"] and os.environ.get("FAKE_DOCKER_COMPOSE") != "yes":
    sys.exit("unknown shorthand flag: 'f' in -f" if "-f" in args else "'compose' is not a docker command.")
print("ok")
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "docker-calls.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


PLUGIN_MISSING = "the Docker Compose v2 plugin is missing (`docker compose version` failed)"
NO_ENGINE = "no Docker engine answers (`docker info` failed)"


@pytest.mark.parametrize(
    ("engine", "plugin", "file", "mode", "why"),
    [
        ("up", "yes", True, "compose", None),
        ("up", "no", True, "embedded", PLUGIN_MISSING),
        ("down", "yes", True, "embedded", NO_ENGINE),
        ("down", "no", True, "embedded", NO_ENGINE),
        ("up", "yes", False, "embedded", "compose/docker-compose.yml is missing"),
    ],
)
def test_mode_auto_picks_compose_only_when_engine_plugin_and_file_answer(
    fake_docker: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    engine: str,
    plugin: str,
    file: bool,
    mode: str,
    why: str | None,
) -> None:
    from dagops.operator.devstack import compose

    monkeypatch.setenv("FAKE_DOCKER_ENGINE", engine)
    monkeypatch.setenv("FAKE_DOCKER_COMPOSE", plugin)
    if file:
        (tmp_path / "compose").mkdir()
        (tmp_path / "compose" / "docker-compose.yml").write_text("services: {}\n")
    said: list[str] = []
    assert compose.resolve_mode("auto", tmp_path, say=said.append) == mode
    assert said == ([] if why is None else [f"Starting the embedded stack: {why}."])
    assert compose.resolve_mode("embedded", tmp_path, say=said.append) == "embedded"
    if why is None:
        assert compose.resolve_mode("compose", tmp_path) == "compose"
        assert compose.compose_argv("up", "--detach", root=tmp_path) == [
            "docker", "compose", "-f", str(tmp_path / "compose" / "docker-compose.yml"), "up", "--detach",
        ]  # fmt: skip
    else:
        with pytest.raises(DagopsError, match=r"^Compose mode cannot start: .*; use --mode embedded\.$"):
            compose.resolve_mode("compose", tmp_path)


def test_mode_auto_without_a_docker_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dagops.operator.devstack import compose

    monkeypatch.setenv("PATH", str(tmp_path))
    said: list[str] = []
    assert compose.resolve_mode("auto", tmp_path, say=said.append) == "embedded"
    assert said == ["Starting the embedded stack: the docker client is not installed."]


def test_dev_with_an_engine_but_no_compose_plugin_starts_the_embedded_stack(
    fake_docker: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke import Context

    from dagops.operator.tasks import dev

    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "up")
    monkeypatch.setenv("FAKE_DOCKER_COMPOSE", "no")
    monkeypatch.delenv("DAGOPS_DEV_MODE", raising=False)
    started: list[DevConfig] = []
    monkeypatch.setattr(control, "start_detached", started.append)
    dev.up(Context(), detach=True)
    assert [c.mode for c in started] == ["auto"]
    assert capsys.readouterr().out.splitlines() == [f"Starting the embedded stack: {PLUGIN_MISSING}."]
    # docker was asked, never told to run compose up.
    assert "compose -f" not in fake_docker.read_text()


def test_dev_mode_compose_without_the_plugin_is_one_sentence(fake_docker: Path) -> None:
    env = {**os.environ, "FAKE_DOCKER_ENGINE": "up", "FAKE_DOCKER_COMPOSE": "no"}
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "dev", "--mode", "compose"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: Compose mode cannot start: {PLUGIN_MISSING}; use --mode embedded."
    ), proc.stderr
    assert proc.stdout == ""
    assert "compose -f" not in fake_docker.read_text()


def test_commands_on_a_running_stack_follow_the_mode_invoke_dev_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI once saw `invoke dev-logs` answer "No logs yet ... start the stack with `invoke dev`" beside a
    # running compose stack: it probed `docker info` to guess the mode, and the busy engine did not answer.
    from dagops.operator.devstack import compose

    probes: list[str] = []

    def probe(root: Path | None = None) -> str | None:
        probes.append("docker info")
        return "no Docker engine answers (`docker info` failed)"

    monkeypatch.setattr(compose, "compose_unavailable", probe)
    config = DevConfig.resolve({}, environ={}, state_dir=str(tmp_path / "state"))
    assert config.mode == "auto"
    assert compose.running_mode(config, embedded_running=False) == "embedded" and probes == ["docker info"]
    compose.record_started(config, up=True)
    probes.clear()
    assert compose.running_mode(config, embedded_running=False) == "compose" and probes == []
    assert compose.running_mode(config, embedded_running=True) == "embedded"
    embedded = DevConfig.resolve({"mode": "embedded"}, environ={}, state_dir=str(tmp_path / "state"))
    assert compose.running_mode(embedded, embedded_running=False) == "embedded"
    compose.record_started(config, up=False)
    assert not (config.state / compose.STARTED).exists()
    assert compose.running_mode(config, embedded_running=False) == "embedded" and probes == ["docker info"]
