"""A small process supervisor: children with prefixed logs, restart with backoff, orderly stop.

Each child runs in its own session (so a Ctrl-C in the terminal reaches only the supervisor, which then
stops the children in order) and its output goes, line by line, to ``<logs>/<name>.log`` and, prefixed
with its name, to the console.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dagops.backoff import doubling

PREFIX_WIDTH = 10
BACKOFF_MAX = 30.0
# A child that ran this long before dying is restarted without waiting (it was healthy).
HEALTHY_AFTER = 60.0


@dataclass
class Child:
    """One supervised process. ``tier`` orders the stop: higher tiers stop first."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    tier: int = 9
    restart: bool = True
    popen_kwargs: dict[str, Any] = field(default_factory=dict)
    # Stops the process gracefully instead of SIGTERM (Postgres: pg_ctl stop -m fast).
    stop_hook: Callable[[], None] | None = None
    # Runs after a restart (the S3 server: bucket and code again, its memory is gone).
    after_restart: Callable[[], None] | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_exits: int = 0  # exits in a row, each before HEALTHY_AFTER: the restart delay doubles
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, logs_dir: Path, console: IO[str] | None, stop_timeout: float = 15.0) -> None:
        self.logs_dir = logs_dir
        self.console = console
        self.stop_timeout = stop_timeout
        self.children: dict[str, Child] = {}
        self.stopping = threading.Event()
        self._lock = threading.RLock()
        self._files: dict[str, IO[str]] = {}
        self._watcher: threading.Thread | None = None
        self.on_change: Callable[[], None] | None = None
        logs_dir.mkdir(parents=True, exist_ok=True)

    # Output -----------------------------------------------------------------------------------
    def _file(self, name: str) -> IO[str]:
        fh = self._files.get(name)
        if fh is None:
            fh = open(self.logs_dir / f"{name}.log", "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            self._files[name] = fh
        return fh

    def emit(self, name: str, line: str) -> None:
        """One line of ``name``'s output: to its log file and, prefixed, to the console."""
        line = line.rstrip("\r\n")
        with self._lock:
            fh = self._file(name)
            fh.write(line + "\n")
            fh.flush()
            if self.console is not None:
                try:
                    self.console.write(f"{name:<{PREFIX_WIDTH}}| {line}\n")
                    self.console.flush()
                except (OSError, ValueError):
                    pass

    def say(self, line: str) -> None:
        self.emit("supervisor", line)

    def _pump(self, child: Child, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.emit(child.name, raw.decode("utf-8", errors="replace"))
        stream.close()

    # Lifecycle --------------------------------------------------------------------------------
    def start(self, child: Child) -> Child:
        """Start ``child`` now and keep supervising it."""
        with self._lock:
            self.children[child.name] = child
            self._spawn(child)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="supervisor-watch", daemon=True)
            self._watcher.start()
        return child

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.argv,
            env=child.env,
            cwd=child.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **child.popen_kwargs,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        assert child.proc.stdout is not None
        threading.Thread(target=self._pump, args=(child, child.proc.stdout), daemon=True).start()
        if self.on_change:
            self.on_change()

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            self.check()

    def check(self) -> None:
        """Restart children that died (with backoff); called periodically by the watcher thread."""
        now = time.monotonic()
        for child in list(self.children.values()):
            with self._lock:
                if self.stopping.is_set() or child.proc is None or not child.restart:
                    continue
                code = child.proc.poll()
                if code is None:
                    continue
                if child.restart_at is None:
                    ran = now - child.started_at
                    child.quick_exits = 1 if ran >= HEALTHY_AFTER else child.quick_exits + 1
                    delay = doubling(child.quick_exits, cap=BACKOFF_MAX)
                    child.restart_at = now + delay
                    self.say(
                        f"{child.name} exited with code {code} after {ran:.0f} s; restarting in {delay:.0f} s"
                    )
                    continue
                if now < child.restart_at:
                    continue
                child.restarts += 1
                # What the dead child left in its session (a sync agent's code server) would hold its port.
                _signal_group(child, signal.SIGKILL)
                try:
                    self._spawn(child)
                except OSError as exc:
                    self.say(f"{child.name} could not be restarted: {exc}")
                    child.restart_at = None
                    continue
            if child.after_restart is not None:
                try:
                    child.after_restart()
                except Exception as exc:  # a failed hook is reported; supervision goes on
                    self.say(f"{child.name}: after-restart step failed: {exc}")

    def stop_all(self) -> None:
        """Stop every child, highest tier first: SIGTERM (or its stop hook), SIGKILL after the timeout."""
        self.stopping.set()
        tiers = sorted({c.tier for c in self.children.values()}, reverse=True)
        for child in self.children.values():
            if not child.alive():  # dead (awaiting a restart): only what it left in its session remains
                _signal_group(child, signal.SIGKILL)
        for tier in tiers:
            group = [c for c in self.children.values() if c.tier == tier and c.alive()]
            for child in group:
                self.say(f"stopping {child.name} (pid {child.pid})")
                try:
                    if child.stop_hook is not None:
                        threading.Thread(target=child.stop_hook, daemon=True).start()
                    else:
                        _signal_group(child, signal.SIGTERM)
                except OSError:
                    pass
            deadline = time.monotonic() + self.stop_timeout
            for child in group:
                assert child.proc is not None
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.say(f"{child.name} did not stop within {self.stop_timeout:.0f} s; killing it")
                    _signal_group(child, signal.SIGKILL)
                    child.proc.wait(timeout=10)
                # Whatever it left behind in its session (a code server under a sync agent) goes too.
                _signal_group(child, signal.SIGKILL)
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()

    def stop_child(self, name: str, timeout: float) -> None:
        """Stop and forget child ``name`` (its whole process group: a sync agent and its code server)."""
        with self._lock:
            child = self.children.pop(name, None)
        if child is None or child.proc is None:
            return
        child.restart = False
        _signal_group(child, signal.SIGTERM)
        try:
            child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.proc.wait(10)
        # Whatever else is left in its session (a code server under the agent) goes too.
        _signal_group(child, signal.SIGKILL)
        if self.on_change:
            self.on_change()

    def pids(self) -> dict[str, int]:
        return {name: c.pid for name, c in self.children.items() if c.pid is not None}


def _signal_group(child: Child, sig: int) -> None:
    if child.proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)
