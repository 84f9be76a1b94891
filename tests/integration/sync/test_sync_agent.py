"""``python -m dagops.runtime.sync`` as a real process: settings, once, status, the loop, the code server
child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from moto_s3 import make_client
from polling import wait_for
from synctrees import agent_env, agent_process, serving_pid, tree_contents, write_tree

from dagops.ports import free_port
from dagops.runtime.sync.codeserver import grpc_serving, rss_kib
from dagops.runtime.sync.report import read_reports
from dagops.runtime.sync.status import read_status

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


def sync_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagops.runtime.sync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("command", ["run", "once"])
def test_missing_bucket_exits_1_with_one_line(command: str, moto_endpoint: str, tmp_path: Path):
    code_dir = tmp_path / "code"
    proc = sync_cli(
        command, "--location", "main", "--code-dir", str(code_dir), env=agent_env(moto_endpoint, None)
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: DAGSTER_S3_BUCKET is not set (the S3 bucket that holds the DAG code); "
        "set it and start again.\n"
    )
    assert proc.stdout == ""
    assert not code_dir.exists()


@pytest.mark.parametrize(
    ("args", "extra", "message"),
    [
        (["run"], {}, "No code location given"),
        (["run", "--location", "Bad/Name"], {}, "Invalid code location name"),
        (["run", "--location", "main"], {"DAGOPS_SYNC_INTERVAL": "soon"}, "is not a number of seconds"),
        (["run", "--location", "main", "--interval", "0"], {}, "must be positive"),
        (["run", "--location", "main"], {"DAGOPS_GRPC_PORT": "x"}, "is not a port number"),
        (["status", "--location", "main"], {}, "No status for code location 'main'"),
    ],
)
def test_bad_settings_exit_1_with_one_line(
    args: list[str], extra: dict[str, str], message: str, moto_endpoint: str, bucket: str, tmp_path: Path
):
    env = agent_env(moto_endpoint, bucket, DAGOPS_CODE_DIR=str(tmp_path / "code"), **extra)
    proc = sync_cli(*args, env=env)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_once_syncs_and_status_reports(
    moto_endpoint: str, bucket: str, publish: Any, source: Path, tmp_path: Path
):
    code_dir = tmp_path / "code"
    env = agent_env(moto_endpoint, bucket, DAGOPS_LOCATION="main", DAGOPS_CODE_DIR=str(code_dir))
    absent = sync_cli("once", env=env)
    assert absent.returncode == 1
    assert "[sync main] waiting: no manifest at s3://" in absent.stdout
    published = publish(source)
    proc = sync_cli("once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"[sync main] swapped to {published.revision[:12]}" in proc.stdout
    assert tree_contents(code_dir / "main" / "current") == tree_contents(source)
    status = sync_cli("status", "--json", env=env)
    assert status.returncode == 0
    data = json.loads(status.stdout)
    assert (data["state"], data["revision"], data["location"]) == ("ok", published.revision, "main")
    human = sync_cli("status", env=env)
    assert "state         ok" in human.stdout
    # A broken upload: once fails (exit 1) and the good tree stays.
    write_tree(source, {"definitions.py": "import dagster as dg\nraise ValueError('nope')\n"})
    publish(source)
    broken = sync_cli("once", env=env)
    assert broken.returncode == 1
    assert "ValueError: nope (at definitions.py:2)" in broken.stdout
    assert (code_dir / "main" / "current").resolve().name == published.revision


def test_run_without_code_server_wakes_on_sigusr1_and_stops_on_sigterm(
    moto_endpoint: str, bucket: str, publish: Any, source: Path, tmp_path: Path
):
    code_dir = tmp_path / "code"
    first = publish(source)
    env = agent_env(moto_endpoint, bucket)
    args = ["run", "--location", "main", "--code-dir", str(code_dir), "--interval", "3600",
            "--no-code-server"]  # fmt: skip
    with agent_process(args, env, tmp_path / "agent.log") as proc:
        status_dir = code_dir / "main"
        wait_for(
            lambda: (s := read_status(status_dir)) and s.revision == first.revision, 60, "first sync", proc
        )
        (source / "data" / "seed.csv").write_text("a,b\n5,6\n")
        second = publish(source)
        time.sleep(0.5)
        proc.send_signal(signal.SIGUSR1)
        wait_for(
            lambda: (s := read_status(status_dir)) and s.revision == second.revision, 30, "the wake-up", proc
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    lines = (tmp_path / "agent.log").read_text().splitlines()
    assert all(line.startswith("[sync main] ") for line in lines), lines
    assert lines[-1] == "[sync main] stopped"


class _FakeWebserver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"path": self.path, "body": json.loads(body)})
        reply = json.dumps({"data": {"reloadRepositoryLocation": {"__typename": "WorkspaceLocationEntry"}}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def webserver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _FakeWebserver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeWebserver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FakeWebserver.received
    server.shutdown()
    server.server_close()


def test_run_supervises_a_real_code_server(
    moto_endpoint: str, bucket: str, publish: Any, source: Path, tmp_path: Path, webserver: Any
):
    """The real loop: first sync, dagster api grpc child, reload, swap + restart, crash + restart, stop."""
    url, received = webserver
    code_dir = tmp_path / "code"
    port = free_port()
    first = publish(source)
    env = agent_env(moto_endpoint, bucket, DAGOPS_LOCATION="main", DAGOPS_CODE_DIR=str(code_dir))
    status_dir = code_dir / "main"

    def serving(revision: str, not_pid: int | None = None) -> int | None:
        return serving_pid(status_dir, revision, not_pid)

    args = ["run", "--interval", "0.5", "--grpc-host", "127.0.0.1", "--grpc-port", str(port),
            "--webserver-url", url]  # fmt: skip
    with agent_process(args, env, tmp_path / "agent.log") as proc:
        pid = wait_for(lambda: serving(first.revision), 120, "the first code server", proc)
        assert grpc_serving("127.0.0.1", port)
        s3 = make_client(moto_endpoint)

        # The agent reports through S3 (what `invoke dags.deploy` waits for): serving the first revision.
        def reported_serving(revision: str) -> bool:
            return any(r.revision == revision and r.serving for r in read_reports(s3, bucket, "main"))

        wait_for(lambda: reported_serving(first.revision), 30, "the agent's report", proc)
        assert received and received[-1]["path"] == "/graphql"
        assert received[-1]["body"]["variables"] == {"n": "main"}
        assert "reloadRepositoryLocation" in received[-1]["body"]["query"]
        agent_rss = rss_kib(proc.pid)
        # A change: new release, child restarted on it, location reloaded.
        marker = tmp_path / "imports.txt"
        (source / "pipelines" / "more.py").write_text(
            "import os\n\nimport dagster as dg\n\n"
            f"with open({str(marker)!r}, 'a') as fh:\n"
            "    fh.write(f'{os.getpid()} {__file__}\\n')\n\n\n"
            "@dg.asset\ndef more() -> int:\n    return 4\n"
        )
        write_tree(source, {"definitions.py": """
            import dagster as dg

            from pipelines.assets import numbers
            from pipelines.more import more

            defs = dg.Definitions(assets=[numbers, more])
        """})  # fmt: skip
        reloads = len(received)
        changed_at = time.monotonic()
        second = publish(source)

        def reported_serving_second() -> bool:
            found = [
                r for r in read_reports(s3, bucket, "main") if r.revision == second.revision and r.serving
            ]
            # Never early: a report of serving the new revision comes after its code server serves it.
            assert not found or serving(second.revision), "reported serving before the code server did"
            return bool(found)

        wait_for(reported_serving_second, 120, "the report of the second revision", proc)
        new_pid = wait_for(lambda: serving(second.revision, not_pid=pid), 120, "the swap and restart", proc)
        change_seconds = time.monotonic() - changed_at
        assert len(received) > reloads
        assert grpc_serving("127.0.0.1", port)
        # The server that serves the new release imported its modules from current/, not from the
        # build folder its import check used.
        imported = dict(line.split(" ", 1) for line in marker.read_text().splitlines())
        assert imported[str(new_pid)] == str(code_dir / "main" / "current" / "pipelines" / "more.py")
        # The child dies on its own: the agent starts another one.
        os.kill(new_pid, signal.SIGKILL)
        wait_for(lambda: serving(second.revision, not_pid=new_pid), 120, "the restart after a crash", proc)
        assert grpc_serving("127.0.0.1", port)
        last_pid = serving(second.revision)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert read_reports(s3, bucket, "main") == []  # a stopped agent is not waited for
        wait_for(lambda: not Path(f"/proc/{last_pid}").exists(), 10, "the child to be gone")
        assert not grpc_serving("127.0.0.1", port, timeout=0.5)
    text = (tmp_path / "agent.log").read_text()
    assert "[sync main] restarting code server: it exited with code -9" in text
    print(f"\nagent RSS {agent_rss} KiB; change to serving with restart {change_seconds:.1f}s")
    assert agent_rss is not None and agent_rss < 150 * 1024
