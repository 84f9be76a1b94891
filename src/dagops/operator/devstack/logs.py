"""`invoke dev.logs`: the component logs of the embedded stack, prefixed like the live console."""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO

from dagops.errors import DagopsError
from dagops.operator.devstack.supervisor import PREFIX_WIDTH


def components(logs_dir: Path) -> list[str]:
    return sorted(p.stem for p in logs_dir.glob("*.log"))


def parse_lines(value: str | int) -> int:
    """``--lines`` as a count of lines (0 or more); invoke hands the flag over as text."""
    if not re.fullmatch(r"\+?[0-9]{1,9}", str(value).strip()):
        raise DagopsError(f"--lines must be a whole number of lines (0 or more), got {value!r}.")
    return int(str(value).strip())


def show(logs_dir: Path, component: str | None = None, lines: int = 100, follow: bool = False,
         out: IO[str] = sys.stdout) -> None:  # fmt: skip
    """Print the last ``lines`` of each component's log (or of one), then follow them if asked."""
    if not isinstance(lines, int) or lines < 0:
        raise DagopsError(f"--lines must be a whole number of lines (0 or more), got {lines!r}.")
    known = components(logs_dir)
    if not known:
        raise DagopsError(f"No logs yet in {logs_dir}; start the stack with `invoke dev`.")
    if component is not None and component not in known:
        raise DagopsError(f"No log for component {component!r}; known: {', '.join(known)}.")
    names = [component] if component else known
    handles = {}
    for name in names:
        fh = open(logs_dir / f"{name}.log", encoding="utf-8", errors="replace")  # noqa: SIM115
        for line in deque(fh, maxlen=lines):
            out.write(f"{name:<{PREFIX_WIDTH}}| {line}")
        handles[name] = fh
    out.flush()
    try:
        while follow:
            quiet = True
            for name in list(handles):
                line = handles[name].readline()
                while line:
                    quiet = False
                    out.write(f"{name:<{PREFIX_WIDTH}}| {line}")
                    line = handles[name].readline()
            for path in logs_dir.glob("*.log"):  # a component that started later
                if component is None and path.stem not in handles:
                    handles[path.stem] = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
            out.flush()
            if quiet:
                time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    finally:
        for fh in handles.values():
            fh.close()
