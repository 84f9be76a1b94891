"""`invoke test`: nox's default sessions, as CI runs them, with one session run beside the others.

The infra session mostly waits on the provider's polling of its moto servers; on a 2-core machine it
runs beside the container sessions (which mostly wait on image builds and container start-ups) instead of
after them. Every session still runs, even after one fails (as plain ``nox`` does); the exit status says
whether any failed. The background session's output is printed after the others', in one block.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dagops.errors import DagopsError

BESIDE = "infra"  # the session that runs in the background ...
WITH = "containers"  # ... starting when this one starts

NOX = (sys.executable, "-m", "nox")


@dataclass(frozen=True)
class Plan:
    before: list[str]  # run first, one after another
    beside: list[str]  # then started in the background ...
    after: list[str]  # ... while these run one after another


def plan(sessions: Sequence[str]) -> Plan:
    """Split the default sessions; without both BESIDE and WITH among them, everything runs in order."""
    if BESIDE not in sessions or WITH not in sessions:
        return Plan(list(sessions), [], [])
    rest = [s for s in sessions if s != BESIDE]
    cut = rest.index(WITH)
    return Plan(rest[:cut], [BESIDE], rest[cut:])


def default_sessions() -> list[str]:
    """The sessions plain ``nox`` runs (noxfile.py's ``nox.options.sessions``), from ``nox -l --json``."""
    proc = subprocess.run([*NOX, "-l", "--json"], capture_output=True, text=True, check=False)
    try:
        names = [str(s["name"]) for s in json.loads(proc.stdout)] if proc.returncode == 0 else []
    except (ValueError, TypeError, KeyError):
        names = []
    if not names:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DagopsError(f"nox could not list the default sessions: {last}")
    return names


def run(say: Callable[[str], None] = print) -> int:
    """Run the default sessions by :func:`plan`; 0 when every one passed, else 1."""
    steps = plan(default_sessions())
    failed = False

    def sessions(names: list[str]) -> None:
        nonlocal failed
        if names:
            failed |= subprocess.run([*NOX, "-s", *names], check=False).returncode != 0

    sessions(steps.before)
    with tempfile.TemporaryFile("w+") as log:
        background = None
        if steps.beside:
            say(f"invoke test: nox -s {' '.join(steps.beside)} runs in the background from here")
            argv = [*NOX, "-s", *steps.beside]
            background = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            sessions(steps.after)
        finally:
            if background is not None:
                failed |= background.wait() != 0
        if background is not None:
            log.seek(0)
            say(f"invoke test: output of nox -s {' '.join(steps.beside)} (ran in the background)")
            sys.stdout.write(log.read())
            sys.stdout.flush()
    return 1 if failed else 0
