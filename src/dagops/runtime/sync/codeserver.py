"""The location's gRPC code server, run and supervised by the sync agent, and the webserver reload.

The child is ``python -m dagster api grpc --module-name M --working-directory <loc>/current/<project>
...`` (or ``--python-file``; the rule is ``dagops.runtime.sync.target``): paths go through the ``current``
symlink, so a restart after a swap loads the new release.
Readiness is the port accepting connections: ``dagster api grpc`` loads the code first and
binds its port after, and the previous server has closed its listener by then (it is told to stop
and the new one to start only once its port refuses connections), so a connection can only reach
the new one. The old process finishes its shutdown (about 1.5 s more) in the background.
(``grpc_serving`` asks the standard gRPC health service instead; it needs grpcio, which
the agent leaves unimported to stay small.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dagops.backoff import doubling
from dagops.errors import DagopsError
from dagops.ports import connect_host, port_open, port_refuses
from dagops.runtime.sync import target as load_target

RUN_TASK_ROLE_ENV = "DAGOPS_RUN_TASK_ROLE_ARN"
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
RELOAD_MUTATION = "mutation($n:String!){reloadRepositoryLocation(repositoryLocationName:$n){__typename}}"
HEALTH_SERVICE = "DagsterApi"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel SIGTERM the code server if the agent dies without stopping it."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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


def run_container_context(env: Mapping[str, str] = os.environ) -> str | None:
    """The code server's ``--container-context``: runs of this location get its own task role.

    From ``DAGOPS_RUN_TASK_ROLE_ARN`` (set by tofu in AWS): ``{"ecs": {"task_role_arn": ARN}}``, which
    Dagster stores with each run and the run launcher (runtime.ecs_run_launcher) applies to the run task.
    None when unset (locally: runs are processes, no roles).
    """
    arn = env.get(RUN_TASK_ROLE_ENV, "").strip()
    if not arn:
        return None
    if not _ROLE_ARN.fullmatch(arn):
        raise DagopsError(
            f"{RUN_TASK_ROLE_ENV}={arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)."
        )
    return json.dumps({"ecs": {"task_role_arn": arn}}, separators=(",", ":"))


READY = b"READY\n"  # what a standby writes on its result pipe once dagster is imported


def _result_line(read_end: int, timeout: float) -> tuple[bool, str]:
    """The first line other than READY from the check's result pipe (closed after): (whether one came
    within ``timeout``, the line; empty at end of file)."""
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while True:
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                if line + b"\n" != READY:
                    return True, line.decode(errors="replace").strip()
            if not select.select([read_end], [], [], max(deadline - time.monotonic(), 0.0))[0]:
                return False, ""
            chunk = os.read(read_end, 4096)
            if not chunk:
                return True, data.decode(errors="replace").strip()
            data += chunk
    finally:
        os.close(read_end)


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
        self.proc: subprocess.Popen[bytes] | None = None
        self.warm: subprocess.Popen[bytes] | None = None
        # A process that has imported dagster and waits for the next check (see ``spawn_standby``):
        # (process, read end of its result pipe, the fd number it writes to, its environment).
        self.standby: tuple[subprocess.Popen[bytes], int, int, dict[str, str]] | None = None
        self.started_at = 0.0
        self._reapers: list[threading.Thread] = []

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
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.started_at = time.monotonic()
        self.log(f"code server started (pid {self.proc.pid}, port {self.port})")

    def _outside_tree(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` without its PYTHONPATH entries under this location's folder (a build, ``current``)."""
        root = os.path.abspath(self.current.parent)
        result = dict(env)
        paths = [
            p
            for p in result.get("PYTHONPATH", "").split(os.pathsep)
            if p and not (os.path.abspath(p) + "/").startswith(root.rstrip("/") + "/")
        ]
        result["PYTHONPATH"] = os.pathsep.join(paths)
        if not paths:
            del result["PYTHONPATH"]
        return result

    def has_standby(self) -> bool:
        return self.standby is not None and self.standby[0].poll() is None

    def spawn_standby(self, env: Mapping[str, str] | None = None) -> None:
        """Start the standby for the next check, unless one runs: ``python -m dagops.runtime.sync.warmserver
        --standby`` imports dagster and what ``dagster api grpc`` imports now, and then blocks on its
        stdin, so the next ``warm_check`` costs only the user's code. ``env``: the environment of the
        release it will most likely check after (its requirements); only a check with the same one
        outside the tree uses it. At most one at a time; it dies with the agent (``discard_standby``,
        and the kernel's death signal). With ``keep_standby``, ``warm_check`` starts the next one as
        soon as one takes its check.
        """
        if self.has_standby():
            return
        self.discard_standby()
        base = self._outside_tree(os.environ if env is None else env)
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "dagops.runtime.sync.warmserver",
                    "--standby",
                    "--result-fd",
                    str(write_end),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
                cwd=str(self.current.parent),
                env=base,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            os.close(read_end)
            self.log(f"no standby for the next check: {exc}")
            return
        finally:
            os.close(write_end)
        self.standby = (proc, read_end, write_end, base)

    def discard_standby(self) -> None:
        standby, self.standby = self.standby, None
        if standby is None:
            return
        proc, read_end, _fd, _env = standby
        proc.kill()  # it holds nothing but imports (and may still be importing): no need to wait for it
        proc.wait()
        os.close(read_end)  # after: a standby still importing must not meet a closed pipe and complain
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()

    def _take_standby(
        self, options: list[str], tree: Path, env: dict[str, str]
    ) -> tuple[Any, int, bool] | None:
        """Hand the check to the standby when it is alive and has the same environment outside the tree:
        (its process, the read end of its result pipe, whether it had finished importing); else None
        (and the standby is discarded)."""
        standby, self.standby = self.standby, None
        if standby is None:
            return None
        proc, read_end, fd, base = standby
        if proc.poll() is None and proc.stdin is not None and self._outside_tree(env) == base:
            # Nothing but its READY line can be in the pipe before it has the job.
            ready = bool(select.select([read_end], [], [], 0)[0]) and os.read(read_end, 64) == READY
            job = {"argv": ["--result-fd", str(fd), *options], "env": env, "cwd": str(tree)}
            try:
                proc.stdin.write(json.dumps(job).encode() + b"\n")
                proc.stdin.flush()
                return proc, read_end, ready
            except OSError:
                pass
        else:
            self.log("standby not used: it exited, or the check's requirements differ from its own")
        self.standby = standby
        self.discard_standby()
        return None

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
        options = [
            "--tree",
            str(tree),
            "--entry",
            entry,
            "--chdir",
            str(self.current),
            "--location",
            self.location,
            "--",
            # The arguments of `python -m dagster`, for the tree once it is `current`.
            *self.command(entry, load_target.resolve(tree, entry).retarget(self.current))[3:],
        ]
        taken = self._take_standby(options, tree, env)
        if taken is not None:
            proc, read_end, was_ready = taken
            if was_ready and self.keep_standby:
                # The next one imports dagster while this change is checked, swapped and served: ready
                # sooner for a change that follows closely.
                self.spawn_standby(env)
        else:
            read_end, write_end = os.pipe()
            try:
                proc = subprocess.Popen(
                    [
                        self.python,
                        "-m",
                        "dagops.runtime.sync.warmserver",
                        "--result-fd",
                        str(write_end),
                        *options,
                    ],
                    stdin=subprocess.PIPE,
                    pass_fds=(write_end,),
                    cwd=str(tree),
                    env=env,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
            except BaseException:
                os.close(read_end)
                raise
            finally:
                os.close(write_end)
        ready, line = _result_line(read_end, timeout)
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
        """SIGTERM, wait, SIGKILL after the timeout; also waits for servers retired before."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            self._reap(proc, time.monotonic() + self.stop_timeout)
        for reaper in self._reapers:
            reaper.join()
        self._reapers.clear()

    def _retire(self) -> None:
        """Stop the running server as far as clients can tell, and let it finish exiting in the background.

        SIGTERM, then wait only until its port refuses connections (its listener is closed: a later
        connection can only reach a server started after this) or it exits; SIGKILL after the stop
        timeout as in ``stop``. Its exit (about 1.5 s after the listener closes) is awaited by a thread.
        """
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        deadline = time.monotonic() + self.stop_timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if port_refuses(self.host, self.port, timeout=0.5):
                break
            time.sleep(0.02)
        if proc.poll() is not None or time.monotonic() >= deadline:
            self._reap(proc, deadline)
            return
        self._reapers = [r for r in self._reapers if r.is_alive()]
        reaper = threading.Thread(target=self._reap, args=(proc, deadline), name="reaper", daemon=True)
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


def reload_location(
    webserver_url: str,
    location: str,
    attempts: int = 5,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """POST ``reloadRepositoryLocation`` to ``<webserver_url>/graphql``; the result's ``__typename``.

    Retries with backoff (the webserver may still be starting); raises OSError after the last attempt.
    """
    url = webserver_url.rstrip("/") + "/graphql"
    body = json.dumps({"query": RELOAD_MUTATION, "variables": {"n": location}}).encode()
    last: Exception | None = None
    for attempt in range(attempts):
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's setting
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                payload = json.loads(response.read() or b"{}")
            data = (payload.get("data") or {}).get("reloadRepositoryLocation") or {}
            if payload.get("errors"):
                raise OSError(f"GraphQL error: {payload['errors'][0].get('message', '?')}")
            return str(data.get("__typename", "?"))
        except (OSError, ValueError) as exc:
            last = exc
        if attempt + 1 < attempts and not should_stop():
            time.sleep(doubling(attempt + 1, first=0.5, cap=8.0))
    raise OSError(f"reload through {url} failed: {last}")


def rss_kib(pid: int | None = None) -> int | None:
    """Resident memory of ``pid`` (default: this process) in KiB, from /proc; None where unavailable."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid or os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None
