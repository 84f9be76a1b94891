"""``repo.list``: the registered repositories with their sync status in the running local stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagops import registry
from dagops.paths import repo_root
from dagops.runtime.sync.status import read_status, status_path


@dataclass(frozen=True)
class RepoStatus:
    """One line of ``repo.list``."""

    name: str
    url: str
    ref: str
    commit: str
    sync: str


def sync_status(code_dir: Path | None, name: str) -> str:
    """A short sync status from the agent's status file (:mod:`dagops.runtime.sync.status`; '-' without a stack)."""
    if code_dir is None:
        return "-"
    if not status_path(code_dir / name).exists():
        return "not synced"
    status = read_status(code_dir / name)
    if status is None:
        return "unreadable status"
    parts = [status.state]
    if status.revision:
        parts.append(status.revision[:12])
    if status.last_error:
        parts.append(status.last_error.splitlines()[0][:80])
    return " ".join(parts)


def list_repos(root: Path | None = None, code_dir: Path | None = None) -> list[RepoStatus]:
    """Every external repository in the registry, with its sync status when a local stack has one."""
    root = root or repo_root()
    return [
        RepoStatus(
            loc.name, loc.url or "", loc.ref or "", (loc.commit or "")[:12], sync_status(code_dir, loc.name)
        )
        for loc in registry.load(root)
        if loc.url
    ]


def format_table(rows: list[RepoStatus]) -> str:
    if not rows:
        return (
            "No external repositories are registered (add one with `invoke repo.add --url URL --name NAME`)."
        )
    header = ("NAME", "URL", "REF", "COMMIT", "SYNC")
    table = [header, *((r.name, r.url, r.ref, r.commit, r.sync) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in table
    )


