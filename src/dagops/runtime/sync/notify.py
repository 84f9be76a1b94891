"""The event path: wake the sync loop when S3 reports a new manifest, instead of waiting for the next poll.

S3 event notifications (``s3:ObjectCreated:*`` and ``s3:ObjectRemoved:*``, prefix ``dags/<location>/``,
suffix ``_manifest.json``) go to one SQS queue per code location (SQS hands each message to one
consumer, so locations must not share a queue). ``SqsWaker`` long-polls that queue in a thread and
wakes the loop; the loop then does its ordinary poll (the manifest stays the only thing trusted, and
a lost or duplicated message costs nothing but latency). Polling continues at the interval as the
safety net, so the interval can stay long (cheap) while changes arrive in about a second.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from dagops import settings
from dagops.backoff import doubling
from dagops.manifest import MANIFEST_NAME

LONG_POLL_SECONDS = 20


def manifest_keys(body: str) -> list[str]:
    """The object keys named by one S3 event notification message (keys arrive URL-encoded)."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    if isinstance(data, dict) and "Message" in data and "Records" not in data:  # delivered through SNS
        try:
            data = json.loads(data["Message"])
        except (TypeError, ValueError):
            return []
    records = data.get("Records") if isinstance(data, dict) else None
    keys = []
    for record in records or []:
        key = ((record.get("s3") or {}).get("object") or {}).get("key")
        if isinstance(key, str):
            keys.append(unquote_plus(key))
    return keys


class EventWaker:
    """A ``Waker`` (see dagops.runtime.sync.agent) woken by ``trigger`` (SIGUSR1, a local publish's nudge)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def wait(self, timeout: float) -> bool:
        woken = self._event.wait(max(timeout, 0.0))
        self._event.clear()
        return woken

    def trigger(self) -> None:
        self._event.set()


class SqsWaker(EventWaker):
    """An ``EventWaker`` also fed by an SQS queue of S3 events (long-polled in a thread)."""

    def __init__(
        self, sqs: Any, queue_url: str, location: str, log: Callable[[str], None] | None = None
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.manifest_key = settings.location_prefix(location) + MANIFEST_NAME
        self.log = log or (lambda line: None)
        super().__init__()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="sqs-waker", daemon=True)
        self.events = 0

    def start(self) -> SqsWaker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._event.set()

    def _listen(self) -> None:
        failures = 0
        last_error = ""
        while not self._stopped.is_set():
            try:
                reply = self.sqs.receive_message(
                    QueueUrl=self.queue_url, WaitTimeSeconds=LONG_POLL_SECONDS, MaxNumberOfMessages=10
                )
            except Exception as exc:  # network, credentials, queue gone: keep polling S3 meanwhile
                failures += 1
                error = " ".join(str(exc).split())[:300]
                if error != last_error:
                    self.log(f"event queue unavailable, polling only: {error}")
                    last_error = error
                self._stopped.wait(doubling(failures + 1, cap=60.0))
                continue
            if last_error:
                self.log("event queue back")
                failures, last_error = 0, ""
            messages = reply.get("Messages") or []
            if any(self.manifest_key in manifest_keys(m.get("Body", "")) for m in messages):
                self.events += 1
                self._event.set()
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ]
                try:
                    self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
                except Exception as exc:  # redelivery later only costs one more idle poll
                    self.log(f"could not delete event messages: {' '.join(str(exc).split())[:200]}")
