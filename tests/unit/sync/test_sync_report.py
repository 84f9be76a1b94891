"""Agents' reports in S3 and the deployer's wait on them (runtime.sync.report), against a moto server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dagops.errors import DagopsError
from dagops.runtime.sync import report
from dagops.runtime.sync.report import Report, Reporter, confirm, read_reports, reports_prefix, wait_served

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_reports_live_under_the_locations_own_assets_prefix() -> None:
    # assets/<loc>/ is what the location's task role may already write (modules/iam): no new permission.
    assert reports_prefix("main") == "assets/main/_dagops/agents/"
    with pytest.raises(DagopsError):
        reports_prefix("../other")


def test_reporter_writes_on_change_and_heartbeat_only(s3: Any, bucket: str) -> None:
    clock = Clock()
    rep = Reporter(s3, bucket, "main", heartbeat=30, agent="task-1", clock=clock)
    assert rep.update("r1", True, None, None)
    assert not rep.update("r1", True, None, None)  # same state, heartbeat not due
    clock.now += 31
    assert rep.update("r1", True, None, None)  # heartbeat
    assert rep.update("r2", False, None, None)  # change
    (found,) = read_reports(s3, bucket, "main")
    assert (found.agent, found.revision, found.serving, found.updated) == ("task-1", "r2", False, clock.now)
    rep.remove()
    assert read_reports(s3, bucket, "main") == []


def test_reporter_survives_an_unreachable_bucket(s3: Any) -> None:
    lines: list[str] = []
    rep = Reporter(s3, "no-such-bucket-here", "main", log=lines.append, agent="a")
    assert not rep.update("r1", True, None, None)
    assert not rep.update("r1", True, None, None)
    assert len(lines) == 1 and "could not write the status report" in lines[0]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"agent": 1, "location": "main", "updated": 1, "heartbeat": 30}).encode(),
        json.dumps({"agent": "a", "location": "main", "updated": "soon", "heartbeat": 30}).encode(),
        json.dumps({"agent": "a", "location": "main", "updated": 1, "heartbeat": 0}).encode(),
        json.dumps(
            {"agent": "a", "location": "main", "revision": ["x"], "updated": 1, "heartbeat": 30}
        ).encode(),
        b"{" + b" " * (report.MAX_REPORT_BYTES + 1) + b"}",
    ],
)
def test_a_malformed_report_is_ignored(body: bytes) -> None:
    assert Report.parse(body) is None


def _put(s3: Any, bucket: str, location: str, **fields: Any) -> None:
    data = {"location": location, "updated": fields.pop("updated"), "heartbeat": 30.0, **fields}
    s3.put_object(
        Bucket=bucket, Key=reports_prefix(location) + f"{data['agent']}.json", Body=json.dumps(data)
    )


def test_wait_served_when_every_fresh_agent_serves(s3: Any, bucket: str) -> None:
    clock = Clock()
    _put(s3, bucket, "main", agent="a", revision="new", serving=True, updated=clock.now)
    _put(s3, bucket, "main", agent="b", revision="new", serving=True, updated=clock.now)
    _put(s3, bucket, "main", agent="gone", revision="old", serving=True, updated=clock.now - 1000)  # stale
    (outcome,) = wait_served(s3, bucket, {"main": "new"}, 10, clock=clock, sleep=clock.sleep)
    assert outcome.state == report.SERVED and sorted(outcome.agents) == ["a", "b"]


def test_wait_served_times_out_naming_the_silent_agents(s3: Any, bucket: str) -> None:
    clock = Clock()
    _put(s3, bucket, "main", agent="a", revision="new", serving=True, updated=clock.now)
    _put(s3, bucket, "main", agent="slow", revision="old", serving=True, updated=clock.now)
    (outcome,) = wait_served(s3, bucket, {"main": "new"}, 5, clock=clock, sleep=clock.sleep)
    assert outcome.state == report.TIMED_OUT and outcome.agents == ["slow"]
    assert "slow did not report serving new" in outcome.line()


def test_confirm_raises_one_sentence_on_a_rejection(s3: Any, bucket: str) -> None:
    clock = Clock()
    error = "revision new rejected, still serving old: SyntaxError: invalid syntax (x.py, line 3)"
    _put(s3, bucket, "main", agent="a", revision="old", serving=True, bad_revision="new", error=error,
         updated=clock.now)  # fmt: skip
    said: list[str] = []
    with pytest.raises(DagopsError, match="SyntaxError: invalid syntax") as err:
        confirm(s3, bucket, {"main": "new"}, 5, said.append, clock=clock)
    assert "\n" not in str(err.value)
    assert any("rejected" in line for line in said)


def test_confirm_without_any_agent_says_so(s3: Any, bucket: str) -> None:
    with pytest.raises(DagopsError, match="no running sync agent reported"):
        confirm(s3, bucket, {"main": "new"}, 0.3, lambda line: None)


def test_confirm_with_nothing_changed_returns_at_once(s3: Any, bucket: str) -> None:
    said: list[str] = []
    confirm(s3, bucket, {}, 5, said.append)
    assert said == []


def test_wait_served_ends_early_when_a_newer_publish_is_coming(s3: Any, bucket: str) -> None:
    clock = Clock()
    _put(s3, bucket, "main", agent="a", revision="old", serving=True, updated=clock.now)
    (outcome,) = wait_served(
        s3, bucket, {"main": "new"}, 60, clock=clock, sleep=clock.sleep, superseded=lambda loc: loc == "main"
    )
    assert outcome.state == report.SUPERSEDED and "replaced by newer saves" in outcome.line()
