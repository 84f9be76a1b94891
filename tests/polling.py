"""Waiting in tests: poll a predicate until it holds, or fail saying what did not happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, proc: Any = None, interval: float = 0.1
) -> Any:
    """The first truthy value of ``predicate()`` within ``timeout`` s; fail naming ``what`` otherwise, or at
    once when ``proc`` (a process the wait depends on) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the agent exited ({proc.returncode}) while waiting for {what}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
