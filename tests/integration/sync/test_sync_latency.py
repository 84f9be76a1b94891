"""What keeps a change-to-visible short: the old code server is not waited for, the loop polls at once."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from synctrees import write_tree

from dagops.ports import free_port, port_open
from dagops.runtime.sync.agent import Agent
from dagops.runtime.sync.codeserver import RETIRE_GRACE_SECONDS, CodeServer, runs_in_progress
from dagops.runtime.sync.syncer import Syncer

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket

SLOW_EXIT_SECONDS = 8.0

# Stands in for `python -m dagster api grpc ... --port P`: listens on P, and on SIGTERM closes its
# listener at once but takes SLOW_EXIT_SECONDS to exit, as dagster's server finishing its shutdown does.
SLOW_EXIT_SERVER = f"""
    import signal, socket, sys, time

    port = int(sys.argv[sys.argv.index("--port") + 1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    listener.settimeout(0.05)
    while not stopping:
        try:
            listener.accept()[0].close()
        except OSError:
            pass
    listener.close()
    time.sleep({SLOW_EXIT_SECONDS})
"""


def _fake_code_server(tmp_path: Path, script: str, port: int, lines: list[str]) -> CodeServer:
    """A CodeServer whose "python" is ``script`` (a stand-in for dagster's gRPC server)."""
    fake_python = tmp_path / "fake-python"
    fake_python.write_text(f"#!{sys.executable}\n" + textwrap.dedent(script))
    fake_python.chmod(0o755)
    (tmp_path / "loc" / "current").mkdir(parents=True)
    return CodeServer("main", tmp_path / "loc", "127.0.0.1", port, lines.append, python=str(fake_python))


def test_a_restart_waits_for_the_old_listener_to_close_not_for_the_old_process_to_exit(tmp_path: Path):
    port = free_port()
    lines: list[str] = []
    server = _fake_code_server(tmp_path, SLOW_EXIT_SERVER, port, lines)
    server.start("definitions.py")
    first = server.proc
    assert first is not None
    try:
        assert server.wait_serving(timeout=30)
        started = time.monotonic()
        server.start("definitions.py")
        restart_seconds = time.monotonic() - started
        second = server.proc
        assert second is not None and second.pid != first.pid
        assert restart_seconds < SLOW_EXIT_SECONDS / 2
        assert first.poll() is None  # still finishing its shutdown
        assert server.wait_serving(timeout=30)  # the port is the new server's
        assert server.alive() and server.pid == second.pid
        # stop() waits for both: the retired one and the current one.
        server.stop()
        assert first.poll() is not None and second.poll() is not None
        assert not port_open("127.0.0.1", port, timeout=0.5)
        assert lines.count(f"code server stopped (pid {first.pid})") == 1
    finally:
        for proc in (first, server.proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


# Stands in for `python -m dagster api grpc ... --port P` with a run in progress: it listens on P and
# starts a run that writes a file when it ends; on SIGTERM it keeps its listener open (as dagster's server
# does, refusing new runs, until its runs end). The run is started as Dagster starts one (a multiprocessing
# "spawn" child, from a worker thread) or as some other child the agent cannot tell from a helper process.
BUSY_SERVER = f"""
    import multiprocessing, os, pathlib, signal, socket, subprocess, sys, threading, time


    def run(done):
        time.sleep({SLOW_EXIT_SECONDS})
        pathlib.Path(done).touch()


    if __name__ == "__main__":
        port = int(sys.argv[sys.argv.index("--port") + 1])
        done = str(pathlib.Path(sys.argv[0]).with_name(f"run-done-{{os.getpid()}}"))
        if os.environ.get("RUN_AS") == "spawn":
            spawn = multiprocessing.get_context("spawn")
            threading.Thread(target=lambda: spawn.Process(target=run, args=(done,)).start()).start()
        else:
            code = f"import time, pathlib; time.sleep({SLOW_EXIT_SECONDS}); pathlib.Path({{done!r}}).touch()"
            subprocess.Popen([sys.executable, "-c", code])
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        signal.signal(signal.SIGTERM, lambda *_: None)
        listener.settimeout(0.05)
        while True:
            try:
                listener.accept()[0].close()
            except OSError:
                pass
"""


@pytest.mark.parametrize("run_as", ["spawn", "other"])
def test_a_server_with_a_run_goes_at_once_or_after_the_grace_and_its_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_as: str
):
    monkeypatch.setenv("RUN_AS", run_as)
    port = free_port()
    lines: list[str] = []
    server = _fake_code_server(tmp_path, BUSY_SERVER, port, lines)
    server.start("definitions.py")
    first = server.proc
    assert first is not None
    try:
        assert server.wait_serving(timeout=30)
        # Dagster's kind of run is seen as one; the other kind is not (the grace covers it).
        if run_as == "spawn":
            wait_for(lambda: runs_in_progress(first.pid), 30, "the run to start")
        else:
            time.sleep(1)
            assert not runs_in_progress(first.pid)
        started = time.monotonic()
        server.start("definitions.py")
        restart_seconds = time.monotonic() - started
        second = server.proc
        assert second is not None and second.pid != first.pid
        if run_as == "spawn":  # killed at once: no window in which it refuses runs
            assert restart_seconds < RETIRE_GRACE_SECONDS
        else:  # held up by the run it could not see only for the grace
            assert RETIRE_GRACE_SECONDS <= restart_seconds < RETIRE_GRACE_SECONDS + SLOW_EXIT_SECONDS / 2
        assert first.poll() is not None
        assert lines.count(f"code server stopped (pid {first.pid})") == 1
        run_done = tmp_path / f"run-done-{first.pid}"
        assert not run_done.exists()
        assert server.wait_serving(timeout=30)  # the port is the new server's
        assert server.alive() and server.pid == second.pid
        # The old server's run outlives it and ends as it would have.
        wait_for(run_done.exists, SLOW_EXIT_SECONDS * 3, "the old server's run to end")
        server.stop()
        assert second.poll() is not None
        assert not port_open("127.0.0.1", port, timeout=0.5)
    finally:
        for proc in (first, server.proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_loop_polls_at_once_after_serving_a_new_release(
    s3: Any, bucket: str, publish: Any, source: Path, tmp_path: Path
):
    """A change published while the code server restarts is synced now, not an interval later."""
    code_dir = tmp_path / "code"
    first = publish(source)
    second_revision: list[str] = []

    class ChangeDuringRestart(Agent):
        def _serve_new_release(self) -> None:
            super()._serve_new_release()
            if not second_revision:
                write_tree(source, {"data/seed.csv": "a,b\n3,4\n"})
                second_revision.append(publish(source).revision)

    syncer = Syncer(s3, bucket, "main", code_dir)
    agent = ChangeDuringRestart(syncer, interval=600)
    thread = threading.Thread(target=agent.run, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        wait_for(lambda: syncer.serving == first.revision or second_revision, 60, "the first release")
        wait_for(lambda: second_revision and syncer.serving == second_revision[0], 60, "the second release")
    finally:
        agent.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - started < 60  # far below the 600 s interval
    assert (code_dir / "main" / "current" / "data" / "seed.csv").read_text() == "a,b\n3,4\n"


def test_every_module_the_warm_server_preloads_exists():
    """A dagster upgrade that moves one of them would silently make every restart slower again."""
    import importlib

    from dagops.runtime.sync.warmserver import _CLI_MODULES

    for name in _CLI_MODULES:
        importlib.import_module(name)
