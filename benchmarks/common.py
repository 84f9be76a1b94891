"""What every benchmark shares: result rows, percentiles, free ports, a moto S3 server, a request counter."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagops.ports import free_port as free_port

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PASS, FAIL, INFO, ERROR = "PASS", "FAIL", "info", "ERROR"


@dataclass
class Row:
    """One line of the results table: a figure beside its budget, and how to measure it again."""

    bench: str
    metric: str
    figure: str
    budget: str = "-"
    status: str = INFO
    command: str = ""
    value: float | None = None
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def reproduce(name: str) -> str:
    return f"nox -s bench -- --only {name}"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0 and 100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def repo_root() -> Path:
    from dagops.paths import repo_root as root

    return root()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server child process on a free loopback port; yields its endpoint URL; stopped after."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below, after the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **FAKE_CREDENTIALS},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"moto server did not start: {log.read().decode()[-500:]}")
            time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client for ``endpoint`` with fake credentials, in its own session (hooks stay private)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
    )
    return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


def s3_client(endpoint: str) -> Any:
    return aws_client("s3", endpoint)


@dataclass
class Traffic:
    """Requests and bytes seen by one client between two snapshots."""

    requests: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    object_gets: list[str] = field(default_factory=list)  # keys of GetObject answered with a body (200)

    def minus(self, before: Traffic) -> Traffic:
        ops = {k: v - before.by_operation.get(k, 0) for k, v in self.by_operation.items()}
        return Traffic(
            requests=self.requests - before.requests,
            by_operation={k: v for k, v in ops.items() if v},
            bytes_sent=self.bytes_sent - before.bytes_sent,
            bytes_received=self.bytes_received - before.bytes_received,
            object_gets=self.object_gets[len(before.object_gets) :],
        )

    def copy(self) -> Traffic:
        return Traffic(
            self.requests,
            dict(self.by_operation),
            self.bytes_sent,
            self.bytes_received,
            list(self.object_gets),
        )


class RequestCounter:
    """Counts every HTTP request a boto3 S3 client sends, by operation, with bytes each way.

    Hooks botocore's ``before-send`` (each attempt on the wire, retries included) and ``after-call``
    (the response's Content-Length; fired for 304 and error answers too).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.traffic = Traffic()
        events = client.meta.events
        events.register("before-send.s3", self._before_send)
        events.register("after-call.s3", self._after_call)

    def _before_send(self, request: Any, **_: Any) -> None:
        self.traffic.requests += 1
        body = request.body
        if body is not None:
            if isinstance(body, bytes | bytearray | str):
                self.traffic.bytes_sent += len(body)
            elif hasattr(body, "seek") and hasattr(body, "tell"):
                pos = body.tell()
                body.seek(0, os.SEEK_END)
                self.traffic.bytes_sent += body.tell() - pos
                body.seek(pos)

    def _after_call(self, http_response: Any, model: Any, context: Any = None, **kwargs: Any) -> None:
        name = model.name
        self.traffic.by_operation[name] = self.traffic.by_operation.get(name, 0) + 1
        length = int(http_response.headers.get("content-length") or 0)
        self.traffic.bytes_received += length
        if name == "GetObject" and http_response.status_code == 200:
            # Path-style URL on a custom endpoint: /<bucket>/<key>
            path = urllib.parse.urlsplit(getattr(http_response, "url", "") or "").path
            parts = path.lstrip("/").split("/", 1)
            self.traffic.object_gets.append(urllib.parse.unquote(parts[1]) if len(parts) == 2 else path)

    def snapshot(self) -> Traffic:
        return self.traffic.copy()

    @contextlib.contextmanager
    def measure(self) -> Iterator[Traffic]:
        """``with counter.measure() as t:`` fills ``t`` with the traffic of the block."""
        before = self.snapshot()
        result = Traffic()
        try:
            yield result
        finally:
            delta = self.traffic.minus(before)
            result.__dict__.update(delta.__dict__)


def make_location(directory: Path, files: int, file_bytes: int = 1024) -> Path:
    """A code location of ``files`` files: definitions.py (one asset) and data files under sql/.

    The data files are what real locations carry besides Python (SQL, YAML); they are not imported,
    so the import check stays as cheap as for a small location.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "definitions.py").write_text(
        "import dagster as dg\n\n\n"
        "@dg.asset\n"
        "def bench_asset() -> int:\n"
        "    return 1\n\n\n"
        "defs = dg.Definitions(assets=[bench_asset])\n"
    )
    data = directory / "sql"
    data.mkdir(exist_ok=True)
    for i in range(files - 1):
        line = f"-- file {i}\nselect {i} as n;\n"
        body = (line * (file_bytes // len(line) + 1))[:file_bytes]
        (data / f"q{i:04d}.sql").write_text(body)
    return directory


def fmt_bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"
