"""The embedded stack's run files under ``<state>/run``: ``stack.json`` (what runs, where, how it went)
and ``supervisor.pid``; and whether a recorded pid still runs."""

from __future__ import annotations

import json
import os
from typing import Any

from dagops.operator.devstack.config import DevConfig

STATE_FILE = "stack.json"
PID_FILE = "supervisor.pid"


def read_state(config: DevConfig) -> dict[str, Any]:
    path = config.run_dir / STATE_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def write_state(config: DevConfig, state: dict[str, Any]) -> None:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = config.run_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, config.run_dir / STATE_FILE)


def remove_run_files(config: DevConfig) -> None:
    """Forget the stack: its pid file and its state file."""
    for name in (PID_FILE, STATE_FILE):
        (config.run_dir / name).unlink(missing_ok=True)


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
