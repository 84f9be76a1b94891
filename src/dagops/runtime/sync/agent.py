"""The sync agent of one code location: its loop (``Agent.run``) and one-shot sync (``Agent.once``).

``run`` syncs in a loop and supervises the location's ``dagster api grpc`` child: restarted after every
swap (then the webserver is asked to reload the location) and whenever it dies. ``once`` syncs one time
(the ECS run tasks use it before running) and exits 0 when the published revision is in place.
The command line and its settings are dagops.runtime.sync.cli's (``python -m dagops.runtime.sync``).
An SQS queue of this location's S3 events (``DAGOPS_SYNC_QUEUE_URL``, see dagops.runtime.sync.notify)
wakes the loop as soon as a manifest is written. ``DAGOPS_RUN_TASK_ROLE_ARN`` (set by tofu in AWS)
becomes the code server's ``--container-context``: the location's runs get that role.
``DAGOPS_SYNC_STANDBY=true`` (the local stack sets it) keeps one more process beside the code server:
a standby that has already imported dagster, so the import check of the next change, which then becomes
the code server, skips that import (about 2 s of CPU); it costs that process's memory (about 150 MB)
while idle, so it is off by default (a code-location task in AWS has 512 MiB).
SIGTERM/SIGINT stop the child and exit 0; SIGUSR1 makes the next poll happen now.
``DAGOPS_CODE_SERVER_MAX_RSS_MB`` (``--max-rss-mb``, default 0: no limit) bounds the code server's memory:
past it, a fresh server loads the same release beside the old one and takes over, as after a swap.
Meant for AWS, where runs are ECS tasks: a local code server's runs are its own children, and while
they run the old server refuses launches with an error the run queue does not retry.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Literal, Protocol

from dagops.backoff import doubling
from dagops.errors import DagopsError
from dagops.runtime.sync.codeserver import CodeServer, rss_kib
from dagops.runtime.sync.notify import EventWaker
from dagops.runtime.sync.report import Reporter
from dagops.runtime.sync.syncer import ABSENT, SWAPPED, UNREACHABLE, PollResult, Syncer
from dagops.webserver import reload_location

MAX_CHILD_BACKOFF = 60.0
RELOAD_ATTEMPTS = 5  # the webserver may still be starting
CHILD_STABLE_SECONDS = 60.0
# A code server is replaced for its memory no sooner than this after it started (no flapping when a
# fresh server is already over the limit: then it is replaced once a minute, and each time logged).
MEMORY_GRACE_SECONDS = CHILD_STABLE_SECONDS


class Waker(Protocol):
    """What the loop waits on between polls. ``wait`` returns True when woken early (a change is likely).

    The default wakes on SIGUSR1 or ``trigger()``; an S3-event notifier (SQS long poll) fits the same shape.
    """

    def wait(self, timeout: float) -> bool: ...

    def trigger(self) -> None: ...


def make_logger(location: str) -> Any:
    def log(message: str) -> None:
        print(f"[sync {location}] {message}", flush=True)

    return log


def aws_client(service: Literal["s3", "sqs"]) -> Any:
    """A client with short timeouts: the loop, not botocore, does the patient retrying.

    (The read timeout outlasts an SQS long poll of 20 s.)
    """
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=30, retries={"total_max_attempts": 2, "mode": "standard"})
    return boto3.client(service, config=config)


class Agent:
    def __init__(
        self,
        syncer: Syncer,
        interval: float,
        code_server: CodeServer | None = None,
        webserver_url: str | None = None,
        waker: Waker | None = None,
        reporter: Reporter | None = None,
        max_rss_mb: float = 0.0,
        memory_grace: float = MEMORY_GRACE_SECONDS,
    ) -> None:
        self.syncer = syncer
        self.max_rss_mb = max_rss_mb
        self.memory_grace = memory_grace
        self.reporter = reporter
        self.location = syncer.location
        self.log = syncer.log
        self.interval = max(interval, 0.05)
        self.code_server = code_server
        self.webserver_url = webserver_url
        self.waker: Waker = waker or EventWaker()
        self.stopping = threading.Event()
        self._last_logged: str | None = None
        self._outage_logged: tuple[float, str] | None = None  # (retry delay, reason) last logged
        self._failures = 0
        self._child_failures = 0
        self._child_next_start = 0.0

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        self.stopping.set()
        self.waker.trigger()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGUSR1, lambda *_: self.waker.trigger())

    # --------------------------------------------------------------------- loop
    def poll(self) -> PollResult:
        result = self.syncer.poll()
        self._failures = self._failures + 1 if result.transient else 0
        self._report(result)
        # After a swap the code server still runs the previous release: not serving the new one yet.
        self._send_report(serving=False if result.outcome == SWAPPED and self.code_server else None)
        return result

    def _send_report(self, serving: bool | None = None) -> None:
        """Tell deployers through S3 what this agent serves (sync.report); heartbeats included."""
        if self.reporter is None:
            return
        status = self.syncer.status
        if serving is None:
            serving = self.code_server is None or (status.code_server or "").startswith("serving")
        error = self.syncer.problem if status.bad_revision else None
        self.reporter.update(status.revision, serving, status.bad_revision, error)

    def _report(self, result: PollResult) -> None:
        """One log line per event: a swap, or a change of problem (not the same error every poll).

        S3 outages: a line when the retry delay or the reason changes (1, 2, 4 ... s up to the interval,
        then silence), and one when S3 answers again.
        """
        if result.outcome == UNREACHABLE:
            delay = self.next_delay()
            if (delay, result.message) != self._outage_logged:
                reason = result.message.removeprefix("S3: ")
                self.log(f"error: S3 unreachable ({reason}); next try in {delay:g} s")
                self._outage_logged = (delay, result.message)
                self._last_logged = result.message
            return
        if self._outage_logged is not None:
            self.log("S3 reachable again")
            self._outage_logged = None
        if result.outcome == SWAPPED:
            self.log(
                f"swapped to {(result.revision or '?')[:12]}: {result.downloaded} downloaded, "
                f"{result.linked} kept, {result.bytes_downloaded} bytes, {result.seconds:.2f}s "
                f"(import check {result.check_seconds:.2f}s)"
            )
            self._last_logged = None
            return
        problem = result.message if result.transient else self.syncer.problem
        if problem != self._last_logged:
            if problem:
                waiting = result.outcome == ABSENT and not self.syncer.serving
                self.log(("waiting: " if waiting else "error: ") + problem)
            elif self._last_logged is not None:
                self.log(f"ok: serving {(self.syncer.serving or '?')[:12]}")
            self._last_logged = problem

    def next_delay(self) -> float:
        """The interval, or exponential backoff (1 s doubling, capped at the interval) after S3 failures."""
        if self._failures:
            return doubling(self._failures, cap=self.interval)
        return self.interval

    def run(self) -> int:
        self.syncer.prepare()
        serving = self.syncer.serving
        if serving:
            self.log(f"serving {serving[:12]} from disk; syncing in the background")
            self._start_child()
        else:
            self.log("no release on disk; waiting for a good one from S3")
            self._spawn_standby()
            while not self.stopping.is_set() and not self.syncer.serving:
                self.poll()
                if not self.syncer.serving:
                    if self.code_server:
                        self.code_server.discard_warm()
                    self.waker.wait(self.next_delay())
            if self.stopping.is_set():
                return self._shutdown()
            self._serve_new_release()
        # Right after serving a new release the next poll is at once: a change published while the
        # code server restarted (seconds) is not left waiting another interval.
        next_poll = time.monotonic() if serving is None else time.monotonic() + self.next_delay()
        while not self.stopping.is_set():
            woken = self.waker.wait(min(max(next_poll - time.monotonic(), 0.0), 1.0))
            if self.stopping.is_set():
                break
            self._supervise_child()
            self._bound_child_memory()
            if woken or time.monotonic() >= next_poll:
                if self.poll().outcome == SWAPPED:
                    self._serve_new_release()
                    next_poll = time.monotonic()
                    continue
                if self.code_server:
                    self.code_server.discard_warm()
                    self._spawn_standby()  # the last one checked a rejected tree
                next_poll = time.monotonic() + self.next_delay()
        return self._shutdown()

    def _shutdown(self) -> int:
        if self.code_server:
            self.code_server.discard_standby()
            self.code_server.discard_warm()
            self.code_server.stop()
            self._set_child_state("stopped")
        if self.reporter is not None:
            self.reporter.remove()  # last: a deploy must not wait for an agent that stopped
        self.log("stopped")
        return 0

    # ------------------------------------------------------------- code server
    def _set_child_state(self, state: str) -> None:
        status = self.syncer.status
        status.code_server = state
        self.syncer.save()
        if not state.startswith("serving"):
            self._send_report(serving=False)

    def _start_child(self) -> None:
        if not self.code_server:
            return
        entry = self.syncer.status.entry or "definitions.py"
        started = time.monotonic()
        self._set_child_state("starting")
        try:
            env = self.syncer.serving_env()
        except DagopsError as exc:
            # Only when the requirements cache was lost and reinstalling fails: retried with backoff.
            self.code_server.stop()
            self.log(f"code server not started: {exc}")
            self._set_child_state("failing (requirements)")
            return
        self.code_server.start(entry, env)
        self._await_child(started)

    def _await_child(self, started: float) -> None:
        """Wait for the child to answer, record it, and have the webserver reload the location."""
        if not self.code_server:
            return
        self._set_child_state("starting")
        if self.code_server.wait_serving(should_stop=self.stopping.is_set):
            self.log(
                f"code server serving {(self.syncer.serving or '?')[:12]} "
                f"after {time.monotonic() - started:.1f}s"
            )
            self._set_child_state(f"serving (pid {self.code_server.pid}, port {self.code_server.port})")
            self._reload_webserver()
            self._send_report(serving=True)  # after the reload: the UI shows what is reported
            self._spawn_standby()  # unless one runs (started when the last one took its check)
        elif not self.stopping.is_set():
            code = self.code_server.exit_code()
            self.log(f"code server did not become ready (exit code {code})")
            self._set_child_state(f"failing (exit code {code})")

    def _spawn_standby(self) -> None:
        """Have a standby ready for the next change (``CodeServer.spawn_standby``) when enabled."""
        if not (self.code_server and self.code_server.keep_standby) or self.code_server.has_standby():
            return
        try:
            env = self.syncer.serving_env() if self.syncer.serving else None
        except DagopsError:
            return  # the requirements of ``current`` cannot be installed: the next check starts afresh
        self.code_server.spawn_standby(env)

    def _serve_new_release(self) -> None:
        """After a swap: promote the warm, already checked server, or restart the child on ``current``."""
        if not self.code_server:
            return
        if self.code_server.promote():
            self._await_child(time.monotonic())
        else:
            self._restart_child("new release")

    def _restart_child(self, why: str) -> None:
        if not self.code_server:
            return
        self.log(f"restarting code server: {why}")
        self._start_child()

    def _supervise_child(self) -> None:
        """Restart a code server that died on its own, with backoff; reset the backoff once it is stable."""
        server = self.code_server
        if not server:
            return
        now = time.monotonic()
        if server.alive():
            if self._child_failures and now - server.started_at > CHILD_STABLE_SECONDS:
                self._child_failures = 0
            return
        if now < self._child_next_start:
            return
        self._child_failures += 1
        delay = doubling(self._child_failures, cap=MAX_CHILD_BACKOFF)
        self._child_next_start = now + delay
        self._restart_child(f"it exited with code {server.exit_code()} (restart {self._child_failures})")

    def _bound_child_memory(self) -> None:
        """Replace a code server whose RSS passed ``max_rss_mb`` (its runs are other processes).

        A fresh server loads the release ``current`` serves beside the old one, then takes over as after
        a swap (``promote``: the old one stops listening first, its running runs finish), and the
        webserver reloads the location; launches in that moment are retried by the run queue.
        """
        server = self.code_server
        if not server or self.max_rss_mb <= 0 or not server.alive():
            return
        if time.monotonic() - server.started_at < self.memory_grace:
            return
        rss = rss_kib(server.pid)
        if rss is None or rss <= self.max_rss_mb * 1024:
            return
        self.log(
            f"code server (pid {server.pid}) holds {rss / 1024:.0f} MB, over its limit of "
            f"{self.max_rss_mb:g} MB: replacing it"
        )
        started = time.monotonic()
        entry = self.syncer.status.entry or "definitions.py"
        try:
            env = self.syncer.serving_env()
        except DagopsError as exc:
            self.log(f"code server not replaced: {exc}")
            server.started_at = time.monotonic()  # tried again after the grace period
            return
        problem = server.warm_check(server.current, entry, self.syncer.check_timeout, env)
        if problem is None and server.promote():
            self._await_child(started)
        else:
            self.log(f"code server not replaced: {problem or 'the fresh server exited'}")
            server.started_at = time.monotonic()

    def _reload_webserver(self) -> None:
        if not self.webserver_url:
            return
        started = time.monotonic()
        try:
            kind = reload_location(
                self.webserver_url, self.location, attempts=RELOAD_ATTEMPTS, should_stop=self.stopping.is_set
            )
            self.log(f"webserver reloaded the location ({kind}) in {time.monotonic() - started:.2f}s")
        except DagopsError as exc:
            self.log(f"could not reload the location in the webserver: {exc}")

    # ---------------------------------------------------------------- one-shot
    def once(self) -> int:
        """Sync one time; 0 when the published revision is what ``current`` serves, else 1."""
        self.syncer.prepare()
        result = self.poll()
        serving = self.syncer.serving
        if serving and not self.syncer.problem and not result.transient:
            self.log(f"in place: {(serving or '?')[:12]}")
            return 0
        return 1
