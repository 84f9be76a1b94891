"""Start, stop and reset the embedded local stack from any terminal.

``up()`` runs the stack (:class:`dagops.operator.devstack.stack.Stack`) in this process and supervises it
until Ctrl-C / SIGTERM (``invoke stop``); ``start_detached()`` runs ``up()`` in a background process and
returns once the UI answers; ``stop()`` and ``wake_agents()`` reach a running stack through its run files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from dagops.errors import DagopsError
from dagops.operator.devstack.config import DevConfig
from dagops.operator.devstack.postgres import LocalPostgres, find_bin_dir
from dagops.operator.devstack.stack import Stack
from dagops.operator.devstack.state import (
    PID_FILE,
    STATE_FILE,
    pid_alive,
    read_state,
    remove_run_files,
    running_pid,
)
from dagops.operator.devstack.supervisor import Supervisor


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


def _stop_local_postgres(config: DevConfig) -> None:
    """Stop a local Postgres server of this state directory that still runs."""
    if (config.postgres_dir / "postmaster.pid").exists() and find_bin_dir():
        LocalPostgres(config.postgres_dir, config.postgres_port).stop()


def _clean_leftovers(config: DevConfig, sup: Supervisor) -> None:
    """After a supervisor that was killed: stop the children it left behind, and a Postgres still running."""
    for name, pid in (read_state(config).get("components") or {}).items():
        if pid_alive(pid):
            sup.say(f"stopping {name} (pid {pid}) left behind by a previous run")
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
    _stop_local_postgres(config)


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


def _refuse_if_running(config: DevConfig) -> None:
    pid = running_pid(config)
    if pid is not None:
        url = read_state(config).get("ui_url", config.ui_url)
        raise DagopsError(
            f"The local stack is already running (pid {pid}, UI {url}); `invoke stop` stops it."
        )


def up(config: DevConfig, console: IO[str] | None = sys.stdout) -> None:
    """Run the embedded stack in this process until Ctrl-C or SIGTERM; DagopsError if it cannot start."""
    _refuse_if_running(config)
    stack = Stack(config, console)
    _clean_leftovers(config, stack.sup)
    with _signals_raise():
        try:
            stack.run()
        except KeyboardInterrupt:
            stack.say("stopping (signal received)")
        except DagopsError as exc:
            stack.state.update(status="failed", error=str(exc))
            stack.save_state()
            stack.say(f"error: {exc}")
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
    _refuse_if_running(config)
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
        _stop_local_postgres(config)
        remove_run_files(config)
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
