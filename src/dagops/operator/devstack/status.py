"""`invoke dev.status`'s report of the embedded stack: supervisor, components, UI, each location's sync."""

from __future__ import annotations

import json

from dagops import webserver
from dagops.operator.devstack.config import DevConfig
from dagops.operator.devstack.state import pid_alive, read_state, running_pid


def status(config: DevConfig) -> list[str]:
    """Human-readable state of the embedded stack: supervisor, components, UI, each location's sync status."""
    pid = running_pid(config)
    if pid is None:
        return [f"the local stack is not running (state in {config.state})"]
    state = read_state(config)
    took = state.get("ready_seconds")
    answers = "answers" if state.get("ui_url") and webserver.server_info(state["ui_url"]) else "no answer"
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
