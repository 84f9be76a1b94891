"""The agent's status file, ``<code-dir>/<location>/status.json``: what is served and what went wrong.

Written atomically (temp file + rename) after every poll, so ``python -m dagops.runtime.sync status`` and
``invoke dags.status`` always read a whole file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATUS_NAME = "status.json"
STATES = ("starting", "ok", "error")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Status:
    location: str
    state: str = "starting"
    revision: str | None = None
    entry: str | None = None
    last_poll: str | None = None
    last_change: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    bad_revision: str | None = None
    code_server: str | None = None
    updated_at: str | None = None
    pid: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Status:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def status_path(location_dir: Path) -> Path:
    return location_dir / STATUS_NAME


def read_status(location_dir: Path) -> Status | None:
    """The status written by the agent serving ``location_dir``, or None when there is none (yet)."""
    try:
        data = json.loads(status_path(location_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "location" not in data:
        return None
    return Status.from_dict(data)


def write_status(location_dir: Path, status: Status) -> None:
    """Replace the status file in one rename (readers never see half a file)."""
    status.updated_at = now_iso()
    location_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=location_dir, prefix=".status.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # readable by the other containers' users (status is not secret)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(status), fh, indent=1)
            fh.write("\n")
        os.replace(tmp, status_path(location_dir))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def format_status(status: Status) -> str:
    """A few human-readable lines."""
    revision = status.revision[:12] if status.revision else "(none)"
    lines = [
        f"location      {status.location}",
        f"state         {status.state}",
        f"revision      {revision}",
        f"last poll     {status.last_poll or '-'}",
        f"last change   {status.last_change or '-'}",
    ]
    if status.code_server:
        lines.append(f"code server   {status.code_server}")
    if status.last_error:
        lines.append(f"last error    {status.last_error}")
    if status.consecutive_failures:
        lines.append(f"failures      {status.consecutive_failures} in a row")
    return "\n".join(lines)


def age_seconds(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        stamp = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return time.time() - stamp.timestamp()
