"""Sync agents report what they serve through S3; a deploy waits for those reports.

Each running agent keeps one small JSON object, ``assets/<location>/_dagops/agents/<agent-id>.json``:
the revision its code server serves, the revision it rejected last and that rejection's one-line error,
and when it wrote the object. The agent writes it when any of these changes and at least every
``heartbeat`` seconds, and deletes it when it stops. The prefix is the location's own ``assets/<loc>/``,
which its task role may already write (modules/iam): no permission across locations is added, and
whoever publishes (a laptop, CI) reads the reports with the bucket access it publishes with; no UI needed.

:func:`wait_served` is the deployer's side: after a publish, it waits until every running agent of each
changed location serves the new revision (or one rejected it, or the time is up). A report is untrusted
input (any code of the location can write its prefix): only a small JSON object of the expected shape
is read, the rest is ignored.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from dagops.names import validate_location_name

REPORTS = "_dagops/agents/"
MAX_REPORT_BYTES = 16 * 1024
DEFAULT_HEARTBEAT = 30.0
# A report older than this many heartbeats (plus a margin for clock skew) is an agent that stopped.
STALE_HEARTBEATS = 3
STALE_MARGIN = 10.0


def reports_prefix(location: str) -> str:
    """``assets/<location>/_dagops/agents/``: under the location's own writable prefix."""
    validate_location_name(location)
    return f"assets/{location}/{REPORTS}"


def agent_id() -> str:
    """This agent's name in reports: ``$DAGOPS_AGENT_ID``, else host name and pid (an ECS task's host)."""
    from dagops import settings  # here: the deploy tasks import this module, and `invoke --list` them

    raw = settings.load(settings.SyncSettings).agent_id or f"{socket.gethostname()}-{os.getpid()}"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in raw)[:100]
    return safe.strip(".") or f"agent-{os.getpid()}"


@dataclass
class Report:
    agent: str
    location: str
    revision: str | None = None  # what the code server serves
    serving: bool = False  # the code server answers on that revision
    bad_revision: str | None = None
    error: str | None = None  # the one-line error of bad_revision (its import error's last line)
    updated: float = 0.0  # epoch seconds
    heartbeat: float = DEFAULT_HEARTBEAT

    def fresh(self, now: float) -> bool:
        return now - self.updated <= STALE_HEARTBEATS * self.heartbeat + STALE_MARGIN

    @classmethod
    def parse(cls, body: bytes) -> Report | None:
        """A report from untrusted bytes, or None when they are not one."""
        if len(body) > MAX_REPORT_BYTES:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        text = {k: data.get(k) for k in ("agent", "location", "revision", "bad_revision", "error")}
        if not isinstance(text["agent"], str) or not isinstance(text["location"], str):
            return None
        if any(v is not None and not isinstance(v, str) for v in text.values()):
            return None
        numbers = {k: data.get(k) for k in ("updated", "heartbeat")}
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers.values()):
            return None
        heartbeat = float(numbers["heartbeat"])  # type: ignore[arg-type]
        if not 0 < heartbeat <= 3600:
            return None
        return cls(
            agent=text["agent"][:100],
            location=text["location"],
            revision=text["revision"],
            serving=data.get("serving") is True,
            bad_revision=text["bad_revision"],
            error=" ".join((text["error"] or "").split())[:500] or None,
            updated=float(numbers["updated"]),  # type: ignore[arg-type]
            heartbeat=heartbeat,
        )


class Reporter:
    """The agent's side: keeps ``<prefix>/<agent-id>.json`` current; S3 failures are logged, never raised."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        location: str,
        heartbeat: float = DEFAULT_HEARTBEAT,
        log: Callable[[str], None] | None = None,
        agent: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.location = location
        self.heartbeat = heartbeat
        self.agent = agent or agent_id()
        self.key = reports_prefix(location) + self.agent + ".json"
        self.log = log or (lambda line: None)
        self.clock = clock
        self._last: tuple[Any, ...] | None = None
        self._written = 0.0
        self._failing = False
        self._removed = False

    def update(
        self, revision: str | None, serving: bool, bad_revision: str | None, error: str | None
    ) -> bool:
        """Write the report when it changed or the heartbeat is due; True when it was written."""
        if self._removed:
            return False
        now = self.clock()
        state = (revision, serving, bad_revision, error)
        if state == self._last and now - self._written < self.heartbeat:
            return False
        report = Report(
            self.agent, self.location, revision, serving, bad_revision, error, now, self.heartbeat
        )
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=json.dumps(asdict(report)).encode(),
                ContentType="application/json",
            )
        except Exception as exc:  # S3 down or no permission: serving code matters more than reporting
            if not self._failing:
                self.log(f"could not write the status report s3://{self.bucket}/{self.key}: {_line(exc)}")
                self._failing = True
            return False
        if self._failing:
            self.log("status report written again")
            self._failing = False
        self._last, self._written = state, now
        return True

    def remove(self) -> None:
        """Delete the report (the agent stops: a deploy must not wait for it); later updates are ignored."""
        self._removed = True
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            self.log(f"could not delete the status report: {_line(exc)}")


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def read_reports(s3: Any, bucket: str, location: str) -> list[Report]:
    """Every well-formed report of ``location`` (stale ones included; see ``Report.fresh``)."""
    prefix = reports_prefix(location)
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents") or []:
            key = item.get("Key", "")
            if (
                not key.endswith(".json")
                or "/" in key[len(prefix) :]
                or item.get("Size", 0) > MAX_REPORT_BYTES
            ):
                continue
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_REPORT_BYTES + 1)
            except Exception as exc:
                if _missing(exc):  # deleted between the listing and the read: an agent that stopped
                    continue
                raise
            report = Report.parse(body)
            if report is not None and report.location == location:
                found.append(report)
    return found


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound")


# ---------------------------------------------------------------------------------- the deployer's side
SERVED, REJECTED, TIMED_OUT, SUPERSEDED = "served", "rejected", "timed-out", "superseded"


@dataclass
class Outcome:
    location: str
    revision: str
    state: str
    seconds: float
    agents: list[str] = field(default_factory=list)  # served: who serves it; timed-out: who did not answer
    error: str | None = None  # rejected: the import error's last line

    def line(self) -> str:
        """One sentence for the terminal."""
        short = self.revision[:12]
        if self.state == SERVED:
            who = f"{len(self.agents)} agent{'s' if len(self.agents) != 1 else ''}"
            return f"{self.location}: serving {short} ({who}, {self.seconds:.1f} s after the publish)"
        if self.state == SUPERSEDED:
            return f"{self.location}: {short} was replaced by newer saves before it was served"
        if self.state == REJECTED:  # the agent's sentence: "revision R rejected, still serving S: <error>"
            error = self.error or "the import check failed"
            return (
                f"{self.location}: {error}"
                if short in error
                else f"{self.location}: rejected {short}: {error}"
            )
        if not self.agents:
            return (
                f"{self.location}: no running sync agent reported within {self.seconds:.0f} s "
                f"(is the stack or environment running?); {short} is published"
            )
        return (
            f"{self.location}: {', '.join(sorted(self.agents))} did not report serving {short} "
            f"within {self.seconds:.0f} s"
        )


def wait_served(
    s3: Any,
    bucket: str,
    revisions: dict[str, str],
    timeout: float,
    *,
    interval: float = 0.25,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_outcome: Callable[[Outcome], None] | None = None,
    superseded: Callable[[str], bool] | None = None,
) -> list[Outcome]:
    """Wait until every fresh agent of each location in ``revisions`` ({location: revision}) serves it.

    A location is done when each of its running agents (a fresh report) serves the revision, or as
    soon as one rejected it; it times out after ``timeout`` s. ``on_outcome`` sees each as it is known.
    ``superseded(location)`` True ends a location's wait early (a newer publish is coming).
    """
    begin = clock()
    pending = dict(revisions)
    outcomes: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        del pending[outcome.location]
        if on_outcome:
            on_outcome(outcome)

    while pending:
        now = clock()
        for location, revision in list(pending.items()):
            live = [r for r in read_reports(s3, bucket, location) if r.fresh(now)]
            rejected = [r for r in live if r.bad_revision == revision]
            waiting = [r.agent for r in live if not (r.revision == revision and r.serving)]
            if rejected:
                done(Outcome(location, revision, REJECTED, now - begin, [r.agent for r in rejected],
                             rejected[0].error or "the import check failed"))  # fmt: skip
            elif live and not waiting:
                done(Outcome(location, revision, SERVED, now - begin, [r.agent for r in live]))
            elif now - begin >= timeout:
                done(Outcome(location, revision, TIMED_OUT, now - begin, waiting))
            elif superseded is not None and superseded(location):
                done(Outcome(location, revision, SUPERSEDED, now - begin))
        if pending:
            sleep(interval)
    return outcomes


def changed_revisions(results: Iterable[Any]) -> dict[str, str]:
    """{location: revision} of the publish results that wrote a new manifest."""
    return {r.location: r.revision for r in results if getattr(r, "manifest_written", False)}


def confirm(
    s3: Any,
    bucket: str,
    revisions: dict[str, str],
    timeout: float,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.time,
) -> None:
    """The end of a deploy: wait for the agents, print one line per location, raise when not all serve.

    Raises DagopsError naming the rejected locations (with the import error) or the silent agents.
    """
    from dagops.errors import DagopsError

    if not revisions:
        return
    names = ", ".join(sorted(revisions))
    say(f"waiting for the sync agents of {names} to serve the new code (--no-wait skips this)")
    outcomes = wait_served(
        s3, bucket, revisions, timeout, clock=clock, on_outcome=lambda o: say(f"  {o.line()}")
    )
    bad = [o for o in outcomes if o.state != SERVED]
    if not bad:
        took = max(o.seconds for o in outcomes)
        say(f"deployed: every agent serves the new code ({took:.1f} s after the publish)")
        return
    rejected = [o for o in bad if o.state == REJECTED]
    if rejected:
        first = rejected[0]
        raise DagopsError(f"Code location {first.line()}")
    raise DagopsError(f"Not confirmed: {'; '.join(o.line() for o in bad)}.")
