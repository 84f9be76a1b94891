"""The processes of an import check: a standby with dagster already imported, or a fresh one.

Both run ``python -m dagops.runtime.sync.warmserver`` and answer on a result pipe: a standby first writes
``READY`` once dagster is imported, then waits on its stdin for a job (the check's arguments, environment
and folder); a fresh process gets its job on the command line. Either then writes ``OK`` (it loaded the
tree and waits, warm, to become the code server) or ``FAIL <one line>``. The code server
(dagops.runtime.sync.codeserver) decides when to spawn, hand over and discard them.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

READY = b"READY\n"  # what a standby writes on its result pipe once dagster is imported
WARMSERVER = ("-m", "dagops.runtime.sync.warmserver")


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel SIGTERM this child if the agent dies without stopping it."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


PREEXEC = die_with_parent if sys.platform.startswith("linux") else None


class Standby(NamedTuple):
    """A standby: its process, the read end of its result pipe, the fd it writes to, its environment."""

    proc: subprocess.Popen[bytes]
    read_end: int
    fd: int
    env: dict[str, str]


def outside_tree(env: Mapping[str, str], root: Path) -> dict[str, str]:
    """``env`` without its PYTHONPATH entries under ``root`` (the location's folder: a build, ``current``)."""
    top = os.path.abspath(root).rstrip("/") + "/"
    result = dict(env)
    paths = [
        p
        for p in result.get("PYTHONPATH", "").split(os.pathsep)
        if p and not (os.path.abspath(p) + "/").startswith(top)
    ]
    result["PYTHONPATH"] = os.pathsep.join(paths)
    if not paths:
        del result["PYTHONPATH"]
    return result


def result_line(read_end: int, timeout: float) -> tuple[bool, str]:
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


def _popen(python: str, options: list[str], cwd: Path, env: Mapping[str, str]) -> tuple[Any, int, int]:
    """A warmserver process with a result pipe: (process, read end, the fd number it writes to).
    ``options``: ``["--standby"]`` for a standby (it takes only that form), else the check's."""
    read_end, write_end = os.pipe()
    result_fd = ["--result-fd", str(write_end)]
    argv = [*options, *result_fd] if options == ["--standby"] else [*result_fd, *options]
    try:
        proc = subprocess.Popen(
            [python, *WARMSERVER, *argv],
            stdin=subprocess.PIPE,
            pass_fds=(write_end,),
            cwd=str(cwd),
            env=dict(env),
            preexec_fn=PREEXEC,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return proc, read_end, write_end


def spawn(python: str, cwd: Path, env: dict[str, str]) -> Standby:
    """Start a standby: it imports dagster and what ``dagster api grpc`` imports, then waits for a job.
    Raises OSError when it cannot start."""
    proc, read_end, fd = _popen(python, ["--standby"], cwd, env)
    return Standby(proc, read_end, fd, env)


def fresh_check(python: str, options: list[str], tree: Path, env: dict[str, str]) -> tuple[Any, int]:
    """Start a check in a new process: (process, read end of its result pipe)."""
    proc, read_end, _fd = _popen(python, options, tree, env)
    return proc, read_end


def hand_over(standby: Standby, options: list[str], tree: Path, env: dict[str, str]) -> bool | None:
    """Give the check to the live ``standby``: whether it had finished importing, or None when it could
    not take the job (then discard it)."""
    proc, read_end, fd, _base = standby
    if proc.stdin is None:
        return None
    # Nothing but its READY line can be in the pipe before it has the job.
    ready = bool(select.select([read_end], [], [], 0)[0]) and os.read(read_end, 64) == READY
    job = {"argv": ["--result-fd", str(fd), *options], "env": env, "cwd": str(tree)}
    try:
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        proc.stdin.flush()
    except OSError:
        return None
    return ready


def discard(standby: Standby) -> None:
    """Kill a standby: it holds nothing but imports (and may still be importing), no need to wait long."""
    proc, read_end, _fd, _env = standby
    proc.kill()
    proc.wait()
    os.close(read_end)  # after: a standby still importing must not meet a closed pipe and complain
    with contextlib.suppress(OSError):
        if proc.stdin:
            proc.stdin.close()
