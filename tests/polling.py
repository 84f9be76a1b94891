"""Waiting in tests: poll a predicate until it holds, or fail saying what did not happen.

The one waiting helper of every test directory (tests/ is on ``sys.path``: ``from polling import wait_for``).
"""

from __future__ import annotations

import reprlib
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 200


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    proc: Any = None,
    interval: float = 0.1,
    *,
    ignore: tuple[type[BaseException], ...] = (),
    logs: Callable[[], str] | None = None,
) -> T:
    """The first truthy value of ``predicate()`` within ``timeout`` s, calling it every ``interval`` s.

    An exception of a type in ``ignore`` raised by ``predicate`` means "not yet" (a component still
    starting or restarting). On timeout the failure names ``what`` and the last value or exception seen,
    followed by ``logs()`` when given; it fails at once when ``proc`` (a process the wait depends on) has
    exited.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        if proc is not None and proc.poll() is not None:
            _fail(f"the process exited ({proc.returncode}) while waiting for {what}", last, logs)
        if time.monotonic() >= deadline:
            _fail(f"timed out after {timeout:.0f} s waiting for {what}", last, logs)
        time.sleep(interval)


def _fail(message: str, last: Any, logs: Callable[[], str] | None) -> NoReturn:
    text = f"{message} (last: {_short.repr(last)})"
    if logs is not None:
        text += "\n" + logs()
    raise AssertionError(text)
