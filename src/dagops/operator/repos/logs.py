"""``repo.logs``: a location's sync-agent log in the local stack, or its CloudWatch log group in an
environment, read by the project's own log readers (``dagops.operator.devstack.logs``, ``dagops.operator.aws.logs``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dagops.errors import DagopsError
from dagops.names import validate_location_name

if TYPE_CHECKING:
    from dagops.operator.aws import Deployment, Echo


def local_logs(logs_dir: Path, name: str, *, follow: bool, out: IO[str] = sys.stdout) -> None:
    """All lines of location ``name``'s sync-agent log in the local stack; ``follow`` keeps printing."""
    from dagops.operator.devstack import logs

    path = logs_dir / f"sync-{validate_location_name(name)}.log"
    if not path.is_file():
        raise DagopsError(f"No log file {path} yet; is the local stack running (`invoke dev`)?")
    logs.show(logs_dir, component=path.stem, lines=sys.maxsize, follow=follow, out=out)


def env_logs(dep: Deployment, name: str, *, since_minutes: int, follow: bool, echo: Echo = print) -> int:
    """Events of location ``name``'s log group in the deployment ``dep``
    from ``since_minutes`` ago; the number printed (following ends with Ctrl-C)."""
    from dagops.operator.aws import logs

    return logs.show(dep, location=name, since=f"{since_minutes}m", follow=follow, echo=echo)
