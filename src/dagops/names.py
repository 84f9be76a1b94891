"""Validation of the names users type: code locations and environments."""

from __future__ import annotations

import re
from pathlib import Path

from dagops.errors import DagopsError

LOCATION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,38}")
ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,15}")
# docker's tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _matching(pattern: re.Pattern[str], value: str, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DagopsError(f"Invalid {what} {value!r}: use {rule}.")
    return value


def validate_location_name(name: str) -> str:
    """Return ``name`` if it can name a code location (S3 prefix, log group, service), else raise."""
    return _matching(
        LOCATION_NAME,
        name,
        "code location name",
        "1-39 characters, a lowercase letter first, then lowercase letters, digits, '-' or '_'",
    )


def validate_image_tag(tag: str) -> str:
    """Return ``tag`` if docker accepts it as an image tag, else raise."""
    return _matching(
        IMAGE_TAG, tag, "image tag", "1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )


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
