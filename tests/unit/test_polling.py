"""tests/polling.py's wait_for, the one waiting helper of the test directories."""

from __future__ import annotations

import subprocess
import sys

import pytest
from polling import wait_for


def counter(values: list[object]):  # type: ignore[no-untyped-def]
    """A predicate returning ``values`` one per call (raising the exceptions among them), then the last."""
    calls: list[object] = []

    def predicate() -> object:
        value = values[min(len(calls), len(values) - 1)]
        calls.append(value)
        if isinstance(value, BaseException):
            raise value
        return value

    predicate.calls = calls  # type: ignore[attr-defined]
    return predicate


def test_returns_the_first_truthy_value() -> None:
    predicate = counter([None, 0, "", ["ready"]])
    assert wait_for(predicate, 10, "the list", interval=0.01) == ["ready"]
    assert len(predicate.calls) == 4


def test_timeout_names_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError) as failed:
        wait_for(counter([None, {}, []]), 0.2, "the agent's status", interval=0.01)
    message = str(failed.value)
    assert message.startswith("timed out after 0 s waiting for the agent's status (last: [])"), message


def test_listed_exceptions_mean_not_yet() -> None:
    predicate = counter([ConnectionRefusedError("refused"), KeyError("state"), "up"])
    assert wait_for(predicate, 10, "the server", interval=0.01, ignore=(OSError, KeyError)) == "up"
    assert len(predicate.calls) == 3


def test_timeout_reports_the_last_exception() -> None:
    with pytest.raises(
        AssertionError, match=r"waiting for Postgres \(last: ConnectionRefusedError\('refused'\)\)"
    ):
        wait_for(
            counter([ConnectionRefusedError("refused")]), 0.1, "Postgres", interval=0.01, ignore=(OSError,)
        )


def test_other_exceptions_propagate() -> None:
    predicate = counter([ValueError("bad answer"), "up"])
    with pytest.raises(ValueError, match="bad answer"):
        wait_for(predicate, 10, "the server", interval=0.01, ignore=(OSError,))
    assert len(predicate.calls) == 1


def test_logs_are_appended_to_the_failure() -> None:
    with pytest.raises(AssertionError) as failed:
        wait_for(lambda: False, 0.1, "the container", interval=0.01, logs=lambda: "line 1\nline 2")
    assert str(failed.value).endswith("waiting for the container (last: False)\nline 1\nline 2"), failed.value


def test_fails_at_once_when_the_process_waited_on_has_exited() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(timeout=30)
    predicate = counter([None])
    with pytest.raises(AssertionError, match=r"the process exited \(3\) while waiting for the agent"):
        wait_for(predicate, 600, "the agent", proc=proc, interval=0.01)
    assert len(predicate.calls) == 1
