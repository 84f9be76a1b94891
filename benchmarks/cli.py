"""CLI latency: how long `invoke --list` and `invoke --help <task>` take, as a user types them.

Each command runs as a fresh process in the repository root (what a shell does), ``repeats`` times after
one warm-up run (which writes the bytecode caches); p50 and p95 are reported beside the 0.6 s budget.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Row, percentile, repo_root, reproduce, verdict

BUDGET_S = 0.6
COMMANDS = (
    ("--list",),
    ("--help", "dags.deploy"),
    ("--help", "dev"),
)


def _invoke() -> str:
    """The invoke console script of this interpreter's environment."""
    candidate = Path(sys.executable).parent / "invoke"
    return str(candidate) if candidate.is_file() else "invoke"


def time_command(argv: list[str], repeats: int, cwd: Path) -> list[float]:
    """Wall-clock seconds of ``repeats`` runs of ``argv`` (after one warm-up run that is not counted)."""
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def cli(repeats: int = 15) -> list[Row]:
    root = repo_root()
    rows = []
    for args in COMMANDS:
        times = time_command([_invoke(), *args], repeats, root)
        p50, p95 = percentile(times, 50), percentile(times, 95)
        rows.append(
            Row(
                "7 CLI latency",
                f"invoke {' '.join(args)}: p50 / p95 over {repeats} runs",
                f"{p50:.2f} s / {p95:.2f} s",
                f"p95 <= {BUDGET_S} s",
                verdict(p95 <= BUDGET_S),
                reproduce("cli"),
                value=p95,
                unit="s",
                details={"times_s": [round(t, 4) for t in times]},
            )
        )
    return rows
