"""Validation of the names users type: code locations and environments."""

from __future__ import annotations

import re
from pathlib import Path

from dagops.errors import DagopsError

LOCATION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,38}")
ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,15}")


def validate_location_name(name: str) -> str:
    """Return ``name`` if it can name a code location (S3 prefix, log group, service), else raise."""
    if not isinstance(name, str) or not LOCATION_NAME.fullmatch(name):
        raise DagopsError(
            f"Invalid code location name {name!r}: use 1-39 characters, a lowercase letter first, "
            "then lowercase letters, digits, '-' or '_'."
        )
    return name


def is_env_root(folder: Path) -> bool:
    """Whether ``folder`` (under live/) is an environment root: it has a main.tf, and it is neither
    bootstrap (which runs no stack) nor a folder whose name starts with ``_`` (live/_shared, the
    definition the environment roots link to)."""
    return folder.name != "bootstrap" and not folder.name.startswith("_") and (folder / "main.tf").is_file()


def validate_env_name(name: str, live_dir: Path | None = None) -> str:
    """Return ``name`` if it is a well-formed environment name (and, given ``live_dir``, one that exists)."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise DagopsError(
            f"Invalid environment name {name!r}: use 1-16 characters, a lowercase letter first, "
            "then lowercase letters, digits or '-'."
        )
    if live_dir is not None:
        root = live_dir / name
        if not is_env_root(root):
            known = sorted(p.name for p in live_dir.iterdir() if is_env_root(p)) if live_dir.is_dir() else []
            raise DagopsError(
                f"Unknown environment {name!r}: expected one of {', '.join(known) or '(none)'} "
                f"(a folder under {live_dir})."
            )
    return name
