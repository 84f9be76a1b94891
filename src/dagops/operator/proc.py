"""Commands whose failure is the user's to fix: one sentence ending in the command's own last error line."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

from dagops.errors import DagopsError


def last_line(text: str, default: str = "no output") -> str:
    """The last non-blank line of a command's output (where tools put their error), or ``default``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else default


def run_checked(argv: Sequence[str], failure: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` capturing text; on a non-zero exit raise ``DagopsError("<failure>: <last line>.")``.

    ``kwargs`` go to :func:`subprocess.run` (env, cwd, input, timeout, ...).
    """
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        detail = last_line(proc.stderr).rstrip(".")
        raise DagopsError(f"{failure}: {detail}.")
    return proc
