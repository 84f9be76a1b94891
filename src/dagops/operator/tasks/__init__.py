"""Invoke task modules, one per area; tasks.py at the repository root assembles them.

Each module defines ``ns`` (its Collection) and may define ``ALIASES``: extra root-level names for
its everyday tasks (the original design's make targets, such as ``dev-logs`` or ``deploy-dags``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.exceptions import Exit

from dagops.errors import DagopsError

if TYPE_CHECKING:
    from dagops.operator.aws import Deployment

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a DagopsError into ``invoke.Exit``: one clear sentence on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DagopsError as exc:
            raise Exit(f"error: {exc}", code=1) from None

    return wrapper  # type: ignore[return-value]


def say(line: str) -> None:
    """One progress line on stdout, flushed at once (tasks report as they go)."""
    print(line, flush=True)


def deployment(env: str) -> Deployment:
    """The named environment's deployment; dagops.operator.aws (boto3) is imported only when a task runs."""
    from dagops.operator.aws import Deployment

    if not env:
        raise DagopsError("Name the environment with --env ENV (a folder under live/, e.g. dev or prod).")
    return Deployment.load(env)
