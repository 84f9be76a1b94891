"""The location's gRPC code server, run and supervised by the sync agent.

The child is ``python -m dagster api grpc --module-name M --working-directory <loc>/current/<project>
...`` (or ``--python-file``; the rule is ``dagops.runtime.sync.target``): paths go through the ``current``
symlink, so a restart after a swap loads the new release.
Readiness is the port accepting connections: ``dagster api grpc`` loads the code first and
binds its port after, and the previous server has closed its listener by then (see ``_retire``), so
a connection can only reach the new one.
(``grpc_serving`` asks the standard gRPC health service instead; it needs grpcio, which
the agent leaves unimported to stay small.)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dagops import settings
from dagops.ports import connect_host, port_open, port_refuses
from dagops.runtime.sync import standby as standbys
from dagops.runtime.sync import target as load_target

RUN_TASK_ROLE_ENV = "DAGOPS_RUN_TASK_ROLE_ARN"
# How long a retired server may keep its listener open (it does while runs it started go on).
RETIRE_GRACE_SECONDS = 2.0
HEALTH_SERVICE = "DagsterApi"


def grpc_serving(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a dagster gRPC server at host:port answers the health check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"{connect_host(host)}:{port}"
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def run_container_context(env: Mapping[str, str] | None = None) -> str | None:
    """The code server's ``--container-context``: runs of this location get its own task role.

    From ``DAGOPS_RUN_TASK_ROLE_ARN`` (set by tofu in AWS; ``env``: read from this mapping instead of the
    environment): ``{"ecs": {"task_role_arn": ARN}}``, which Dagster stores with each run and the run
    launcher (runtime.ecs_run_launcher) applies to the run task. None when unset (locally: runs are
    processes, no roles). A value that is not a role ARN is a ConfigError.
    """
    given = None if env is None else {RUN_TASK_ROLE_ENV: env.get(RUN_TASK_ROLE_ENV, "")}
    arn = settings.load(settings.SyncSettings, environ=given).run_task_role_arn
    if not arn:
        return None
    return json.dumps({"ecs": {"task_role_arn": arn}}, separators=(",", ":"))


class CodeServer:
    """One ``dagster api grpc`` child serving ``<location_root>/current/<entry>``."""

    def __init__(
        self,
        location: str,
        location_root: Path,
        host: str,
        port: int,
        log: Callable[[str], None],
        python: str = sys.executable,
        stop_timeout: float = 15.0,
        container_context: str | None = None,
        keep_standby: bool = False,
    ) -> None:
        self.location = location
        # Hand each check to a standby and start the next one at once (see ``spawn_standby``).
        self.keep_standby = keep_standby
        self.current = Path(location_root) / "current"
        self.host = host
        self.port = port
        self.log = log
        self.python = python
        self.stop_timeout = stop_timeout
        self.container_context = container_context
        self._reapers: list[threading.Thread] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.warm: subprocess.Popen[bytes] | None = None
        # A process that has imported dagster and waits for the next check (see ``spawn_standby``):
        self.standby: standbys.Standby | None = None
        self.started_at = 0.0

    def command(self, entry: str, target: load_target.LoadTarget | None = None) -> list[str]:
        """``python -m dagster api grpc ...``; the warm path runs the same arguments in-process.

        ``target``: the entry's load target in ``current`` (default: resolved there; a warm check
        resolves it in its build tree, as ``current`` may not exist yet).
        """
        command = [
            self.python,
            "-m",
            "dagster",
            "api",
            "grpc",
            *(target or load_target.resolve(self.current, entry)).dagster_args(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--location-name",
            self.location,
        ]
        if self.container_context:
            command += ["--container-context", self.container_context]
        return command

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def start(self, entry: str, env: dict[str, str] | None = None) -> None:
        """Stop the running server and start one on ``current``; ``env``: its requirements' environment."""
        self._retire()
        target = load_target.resolve(self.current, entry)
        self.proc = subprocess.Popen(
            self.command(entry),
            cwd=str(target.project_dir),
            env=load_target.with_paths(target, os.environ if env is None else env),
            preexec_fn=standbys.PREEXEC,
        )
        self.started_at = time.monotonic()
        self.log(f"code server started (pid {self.proc.pid}, port {self.port})")

    def _outside_tree(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` without its PYTHONPATH entries under this location's folder (a build, ``current``)."""
        return standbys.outside_tree(env, self.current.parent)

    def has_standby(self) -> bool:
        return self.standby is not None and self.standby.proc.poll() is None

    def spawn_standby(self, env: Mapping[str, str] | None = None) -> None:
        """Start the standby for the next check, unless one runs (dagops.runtime.sync.standby), so the
        next ``warm_check`` costs only the user's code. ``env``: the environment of the release it will
        most likely check after (its requirements); only a check with the same one outside the tree
        uses it. At most one at a time; it dies with the agent (``discard_standby``, and the kernel's
        death signal). With ``keep_standby``, ``warm_check`` starts the next one as soon as one takes
        its check.
        """
        if self.has_standby():
            return
        self.discard_standby()
        base = self._outside_tree(os.environ if env is None else env)
        try:
            self.standby = standbys.spawn(self.python, self.current.parent, base)
        except OSError as exc:
            self.log(f"no standby for the next check: {exc}")

    def discard_standby(self) -> None:
        standby, self.standby = self.standby, None
        if standby is not None:
            standbys.discard(standby)

    def _take_standby(
        self, options: list[str], tree: Path, env: dict[str, str]
    ) -> tuple[Any, int, bool] | None:
        """Hand the check to the standby when it is alive and has the same environment outside the tree:
        (its process, the read end of its result pipe, whether it had finished importing); else None
        (and the standby is discarded)."""
        standby, self.standby = self.standby, None
        if standby is None:
            return None
        if standby.proc.poll() is None and self._outside_tree(env) == standby.env:
            ready = standbys.hand_over(standby, options, tree, env)
            if ready is not None:
                return standby.proc, standby.read_end, ready
        else:
            self.log("standby not used: it exited, or the check's requirements differ from its own")
        standbys.discard(standby)
        return None

    def _check_options(self, tree: Path, entry: str) -> list[str]:
        """The warmserver's arguments of a check of ``tree``, then those of ``python -m dagster`` for the
        tree once it is ``current``."""
        return [
            "--tree",
            str(tree),
            "--entry",
            entry,
            "--chdir",
            str(self.current),
            "--location",
            self.location,
            "--",
            *self.command(entry, load_target.resolve(tree, entry).retarget(self.current))[3:],
        ]

    def warm_check(
        self, tree: Path, entry: str, timeout: float = 300.0, env: dict[str, str] | None = None
    ) -> str | None:
        """Import-check ``tree`` in a process that can then become the code server (see ``promote``).

        None when the tree loads (the process waits, warm), else the one-line error. ``env`` carries the
        tree's requirements (PYTHONPATH); the same cache directory serves ``current`` after the swap.
        The check runs in the standby when there is a fitting one (``spawn_standby``), else in a new
        process.
        """
        self.discard_warm()
        env = load_target.with_paths(load_target.resolve(tree, entry), os.environ if env is None else env)
        options = self._check_options(tree, entry)
        taken = self._take_standby(options, tree, env)
        if taken is not None:
            proc, read_end, was_ready = taken
            if was_ready and self.keep_standby:
                # The next one imports dagster while this change is checked, swapped and served: ready
                # sooner for a change that follows closely.
                self.spawn_standby(env)
        else:
            proc, read_end = standbys.fresh_check(self.python, options, tree, env)
        ready, line = standbys.result_line(read_end, timeout)
        if taken is not None and self.keep_standby:
            # The standby taken was still importing: the next one starts only now, as two imports at
            # once would slow this check down (a busy machine); a no-op when one started above.
            self.spawn_standby(env)
        if line.startswith("OK"):
            self.warm = proc
            return None
        proc.kill()
        proc.wait()
        if not ready:
            return f"import check timed out after {timeout:.0f}s"
        if line.startswith("FAIL "):
            return line[5:]
        return f"import check failed with exit code {proc.returncode}"

    def promote(self) -> bool:
        """Replace the running server with the warm, checked one; False when there is none."""
        warm, self.warm = self.warm, None
        if warm is None or warm.poll() is not None or warm.stdin is None:
            return False
        self._retire()
        try:
            warm.stdin.write(b"serve\n")
            warm.stdin.close()
        except OSError:
            warm.kill()
            warm.wait()
            return False
        self.proc = warm
        self.started_at = time.monotonic()
        self.log(f"code server started warm (pid {warm.pid}, port {self.port})")
        return True

    def discard_warm(self) -> None:
        warm, self.warm = self.warm, None
        if warm is None:
            return
        with contextlib.suppress(OSError):
            if warm.stdin:
                warm.stdin.close()  # end of input: the warm process exits
        try:
            warm.wait(5)
        except subprocess.TimeoutExpired:
            warm.kill()
            warm.wait()

    def stop(self) -> None:
        """SIGTERM (its runs may finish), wait, SIGKILL after the timeout; also waits for servers retired
        before."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            self._reap(proc, time.monotonic() + self.stop_timeout)
        for reaper in self._reapers:
            reaper.join()
        self._reapers.clear()

    def _retire(self) -> None:
        """Stop the running server as far as clients can tell, so that the next one can take its port.

        A server with runs in progress (children of the server where the local default run launcher
        starts them) would, told to stop, keep its listener open until they end while refusing new runs
        ("Tried to start a run on a server after telling it to shut down"), and the webserver and daemon
        keep reaching it on the location's one port: it is killed at once instead. Its runs go on without
        it and report to the run storage themselves (in AWS runs are their own tasks). Otherwise SIGTERM,
        then wait until its port refuses connections (a later connection can only reach a server started
        after this) or it exits, killed after ``RETIRE_GRACE_SECONDS`` (runs the check could not see). A
        killed server's exit is awaited before the next one binds the port (gRPC binds with SO_REUSEPORT:
        a listener still open would share it); a closed listener's process finishes exiting (about 1.5 s)
        in the background.
        """
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if runs_in_progress(proc.pid):
            proc.kill()
            self._reap(proc, time.monotonic() + self.stop_timeout)
            return
        proc.terminate()
        deadline = time.monotonic() + RETIRE_GRACE_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            if port_refuses(self.host, self.port, timeout=0.5):
                break
            time.sleep(0.02)
        if proc.poll() is not None or time.monotonic() >= deadline:
            proc.kill()
            self._reap(proc, time.monotonic() + self.stop_timeout)
            return
        self._reapers = [r for r in self._reapers if r.is_alive()]
        reaper = threading.Thread(
            target=self._reap, args=(proc, time.monotonic() + self.stop_timeout), name="reaper", daemon=True
        )
        reaper.start()
        self._reapers.append(reaper)

    def _reap(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.log(f"code server stopped (pid {proc.pid})")

    def wait_serving(self, timeout: float = 180.0, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait until the child answers SERVING; False if it died, the timeout passed, or we are stopping."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not should_stop():
            if not self.alive():
                return False
            if port_open(self.host, self.port):
                return True
            time.sleep(0.02)
        return False


def runs_in_progress(pid: int) -> bool:
    """Whether the code server ``pid`` has runs under way: Dagster starts each run it launches as a
    multiprocessing "spawn" child (``spawn_main`` on its command line; its resource tracker is not one).
    Read from /proc (Linux, as ``rss_kib``); False where unavailable."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob(
        "*/children"
    ):  # a child is listed under the thread that forked it
        with contextlib.suppress(OSError):
            children += task.read_text().split()
    for child in children:
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                return True
    return False


def rss_kib(pid: int | None = None) -> int | None:
    """Resident memory of ``pid`` (default: this process) in KiB, from /proc; None where unavailable."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid or os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None
