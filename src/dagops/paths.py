"""Where things are: the repository root and the local state folder."""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``DAGOPS_ROOT`` if set, else the folder holding tasks.py above this package."""
    from dagops import settings  # here: pydantic stays out of `invoke --list`

    given = settings.load(settings.PathSettings).root
    if given:
        return given.resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tasks.py").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def state_dir(root: Path | None = None) -> Path:
    """Git-ignored state of the dev stack (database, synced code, logs): DAGOPS_STATE_DIR or .dagops/."""
    from dagops import settings

    given = settings.load(settings.PathSettings).state_dir
    if given:
        return given.resolve()
    return (root or repo_root()) / ".dagops"
