"""Where things are: the repository root and the local state folder."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``DAGOPS_ROOT`` if set, else the folder holding tasks.py above this package."""
    env = os.environ.get("DAGOPS_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tasks.py").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def state_dir(root: Path | None = None) -> Path:
    """Git-ignored state of the dev stack (database, synced code, logs): DAGOPS_STATE_DIR or .dagops/."""
    env = os.environ.get("DAGOPS_STATE_DIR")
    if env:
        return Path(env).resolve()
    return (root or repo_root()) / ".dagops"
