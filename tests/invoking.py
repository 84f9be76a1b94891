"""The task menu as a process: ``run_invoke(*args, env=...)`` runs `invoke` on this checkout's tasks.py
with Python of the test run and returns the finished process (output captured, never raising on exit)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_invoke(
    *args: str, env: dict[str, str], cwd: Path | None = REPO, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`invoke ARGS` in ``cwd`` (None: the test's own) with exactly ``env``; fails after ``timeout`` s."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
