"""The ECS container health checks (modules/dagster/health_checks.json) run for real against real processes.

Each command is taken from the file the task definitions are built from and run the way ECS runs a
``CMD`` check: as a process, killed after the check's ``timeout`` (which ECS counts as a failure). It must
pass against a live process and fail once that process hangs (SIGSTOP: the process exists, its port still
accepts connections, nothing answers). The processes use a throwaway DAGSTER_HOME (SQLite storage): the
checks talk to the process (HTTP, gRPC) or read the daemon's heartbeats through the instance, whatever
the storage is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tfharness import REPO

from dagops.operator.devstack.config import free_port

CHECKS: dict[str, Any] = json.loads((REPO / "modules" / "dagster" / "health_checks.json").read_text())
BIN = Path(sys.executable).parent
DEFINITIONS = """
import dagster as dg

@dg.asset
def one() -> int:
    return 1

defs = dg.Definitions(assets=[one])
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("health")
    (base / "defs.py").write_text(DEFINITIONS)
    (base / "home").mkdir()
    (base / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return base


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(home / "home"),
        **extra,
    }


# ECS kills a check after its `timeout` and counts that as a failure. This machine is shared and can be
# many times slower than a task's own vCPU, so the tests give each check more time (PATIENCE) and ask
# more of it: a hung process must make the command itself exit non-zero (its own 5 s / 10 s network
# timeouts), not merely run out of time.
PATIENCE = 240


def run_check(role: str, env: dict[str, str], port: int | None = None) -> tuple[int | None, str]:
    """Run the role's check as ECS runs a CMD check (no shell): its exit code, None if it never ended."""
    kind, *argv = CHECKS[role]["command"]
    assert kind == "CMD", f"{role}: ECS runs CMD checks without a shell; {kind} is not used here"
    argv = [a.replace("{port}", str(port)) for a in argv]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        return None, f"still running after {PATIENCE} s"
    return proc.returncode, (proc.stdout + proc.stderr)[-2000:]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def _start(
    procs: list[subprocess.Popen[bytes]], argv: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    return p


def _until_healthy(
    role: str, env: dict[str, str], proc: subprocess.Popen[bytes], port: int | None = None
) -> None:
    # Startup on a shared test machine can be slower than in a task: the test's own patience, not startPeriod.
    deadline = time.monotonic() + 600
    out = ""
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the {role} process exited ({proc.returncode})"
        code, out = run_check(role, env, port)
        if code == 0:
            return
        time.sleep(2)
    raise AssertionError(f"{role} never became healthy: {out}")


def test_each_check_gives_up_before_ecs_does() -> None:
    """The python checks time out on their own (HTTP 5 s, gRPC 10 s) within ECS's timeout."""
    web, grpc = CHECKS["webserver"], CHECKS["code-location"]
    assert "timeout=5" in web["command"][-1] and web["timeout"] > 5
    assert "timeout=10" in grpc["command"][-1] and grpc["timeout"] > 10


def test_every_role_has_a_check_ecs_accepts() -> None:
    roles = {k for k in CHECKS if not k.startswith("_")}
    assert roles == {"webserver", "daemon", "code-location"}
    for role in roles:
        check = CHECKS[role]
        # ECS limits: interval 5-300 s, timeout 2-60 s, retries 1-10, startPeriod 0-300 s.
        assert 5 <= check["interval"] <= 300 and 2 <= check["timeout"] <= 60, role
        assert 1 <= check["retries"] <= 10 and 0 <= check["startPeriod"] <= 300, role
        assert check["timeout"] < check["interval"], role
        assert (BIN / check["command"][1]).exists(), f"{check['command'][1]} is not in the image's venv"
        assert "curl" not in json.dumps(check), "the slim image has no curl"
    # The same gRPC health service `dagster api grpc-health-check` asks, without importing dagster.
    assert "service='DagsterApi'" in CHECKS["code-location"]["command"][-1]


def test_webserver_check_passes_then_detects_a_hang(
    home: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = _env(home)
    argv = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-f", str(home / "defs.py")]
    proc = _start(started, argv, env)
    _until_healthy("webserver", env, proc, port)
    os.kill(proc.pid, signal.SIGSTOP)
    code, out = run_check("webserver", env, port)
    assert code not in (0, None), f"a stopped webserver: exit code {code}: {out}"


def test_code_server_check_passes_then_detects_a_hang(
    home: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = _env(home)
    argv = [str(BIN / "dagster"), "api", "grpc", "--host", "127.0.0.1", "--port", str(port),
            "-f", str(home / "defs.py")]  # fmt: skip
    proc = _start(started, argv, env)
    _until_healthy("code-location", env, proc, port)
    os.kill(proc.pid, signal.SIGSTOP)
    code, out = run_check("code-location", env, port)
    assert code not in (0, None), f"a stopped code server: exit code {code}: {out}"


def test_daemon_check_passes_then_detects_a_hang(home: Path, started: list[subprocess.Popen[bytes]]) -> None:
    # The daemon heartbeats every 30 s; the check fails once the newest heartbeat is older than 30 s plus
    # DAGSTER_DAEMON_HEARTBEAT_TOLERANCE (300 s in the task definition, 5 s here to keep the test short).
    env = _env(home)
    proc = _start(started, [str(BIN / "dagster-daemon"), "run", "-f", str(home / "defs.py")], env)
    check_env = {**env, "DAGSTER_DAEMON_HEARTBEAT_TOLERANCE": "5"}
    _until_healthy("daemon", check_env, proc)
    os.kill(proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    code: int | None = 0
    while code == 0 and time.monotonic() - stopped < 30 + 5 + PATIENCE:
        time.sleep(5)
        code, out = run_check("daemon", check_env)
    assert code not in (0, None), (
        f"a stopped daemon, {time.monotonic() - stopped:.0f} s later: exit code {code}: {out}"
    )
    print(f"\n[health] stopped daemon detected after {time.monotonic() - stopped:.0f} s")
