"""S3-only benchmarks: the sync agent's idle cost (2) and a deploy of one changed file (5), on a moto server.

Both use the product's own library code (``dagops.runtime.sync.syncer.Syncer.poll`` is one sync step of the
agent; ``dagops.publish.publish_location`` is what ``dags.deploy`` calls per location) with a botocore
event hook counting every request and the bytes each way. Times on a loopback moto server leave out
S3's own latency; the request counts are what carries over to AWS.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    INFO,
    RequestCounter,
    Row,
    Traffic,
    fmt_bytes,
    make_location,
    moto_server,
    reproduce,
    s3_client,
    verdict,
)

FILES = 1000
IDLE_POLLS = 20
LOCATION = "bench"
BUCKET = "dagops-bench"
# A request to S3 in the same region takes roughly this long (first byte); used to turn counts into time.
S3_REQUEST_MS = 20


def _changed(location_dir: Path, n: int) -> str:
    """Rewrite one data file so its content changes; return its path relative to the location."""
    rel = "sql/q0500.sql"
    (location_dir / rel).write_text(f"-- changed {n} at {time.time_ns()}\nselect 500 as n;\n")
    return rel


def idle_sync() -> list[Row]:
    """Benchmark 2: requests and bytes per idle poll of a 1,000-file location, and for one changed file."""
    from dagops.publish import publish_location
    from dagops.runtime.sync.syncer import SWAPPED, UNCHANGED, Syncer

    name = "idle"
    cmd = reproduce(name)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp, moto_server() as endpoint:
        src = make_location(Path(tmp) / "src", FILES)
        publisher = s3_client(endpoint)
        publisher.create_bucket(Bucket=BUCKET)
        publish_location(publisher, BUCKET, LOCATION, src)

        agent_s3 = s3_client(endpoint)
        counter = RequestCounter(agent_s3)
        syncer = Syncer(agent_s3, BUCKET, LOCATION, Path(tmp) / "code")
        syncer.prepare()
        with counter.measure() as first:
            started = time.monotonic()
            result = syncer.poll()
            first_s = time.monotonic() - started
        if result.outcome != SWAPPED:
            raise RuntimeError(f"first sync did not swap: {result.outcome} {result.message}")
        rows.append(
            Row(
                "2 idle sync",
                f"first sync of {FILES} files",
                f"{first.requests} requests, {fmt_bytes(first.bytes_received)} in, {first_s:.1f} s "
                f"(incl. import check)",
                "-",
                INFO,
                cmd,
                value=first.requests,
                unit="requests",
                details={"by_operation": first.by_operation, "seconds": first_s},
            )
        )

        idle = []
        for _ in range(IDLE_POLLS):
            with counter.measure() as t:
                result = syncer.poll()
            if result.outcome != UNCHANGED:
                raise RuntimeError(f"idle poll was not idle: {result.outcome} {result.message}")
            idle.append(t)
        per_poll = max(t.requests for t in idle)
        downloads = sum(len(t.object_gets) for t in idle)
        bytes_in = statistics.mean(t.bytes_received for t in idle)
        bytes_out = statistics.mean(t.bytes_sent for t in idle)
        ops = sorted({op for t in idle for op in t.by_operation})
        rows.append(
            Row(
                "2 idle sync",
                f"idle poll, {FILES}-file location (max of {IDLE_POLLS})",
                f"{per_poll} request ({', '.join(ops)} -> 304), {downloads} downloads, "
                f"{bytes_in:.0f} B body in, {bytes_out:.0f} B body out",
                "1 small request, 0 downloads",
                verdict(per_poll == 1 and downloads == 0 and bytes_in < 1024),
                cmd,
                value=per_poll,
                unit="requests/poll",
                details={"downloads": downloads, "bytes_in_mean": bytes_in, "operations": ops},
            )
        )

        rel = _changed(src, 1)
        publish_location(publisher, BUCKET, LOCATION, src)
        with counter.measure() as change:
            started = time.monotonic()
            result = syncer.poll()
            change_s = time.monotonic() - started
        if result.outcome != SWAPPED:
            raise RuntimeError(f"the poll after a change did not swap: {result.outcome} {result.message}")
        gets = change.object_gets
        manifest_gets = [k for k in gets if k.endswith("_manifest.json")]
        file_gets = [k for k in gets if not k.endswith("_manifest.json")]
        ok = change.requests == 2 and len(manifest_gets) == 1 and file_gets == [f"dags/{LOCATION}/{rel}"]
        rows.append(
            Row(
                "2 idle sync",
                "poll after one file changed",
                f"{change.requests} requests ({len(manifest_gets)} manifest + {len(file_gets)} file), "
                f"{fmt_bytes(change.bytes_received)} in, {change_s:.2f} s (incl. import check), "
                f"{result.linked} files hard-linked",
                "manifest + 1 download",
                verdict(ok),
                cmd,
                value=change.requests,
                unit="requests",
                details={"by_operation": change.by_operation, "gets": gets, "seconds": change_s},
            )
        )
    return rows


def deploy() -> list[Row]:
    """Benchmark 5: publishing a 1,000-file location with one changed file: requests and time."""
    from dagops.publish import PublishResult, publish_location

    name = "deploy"
    cmd = reproduce(name)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp, moto_server() as endpoint:
        src = make_location(Path(tmp) / "src", FILES)
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        counter = RequestCounter(s3)

        def timed() -> tuple[float, PublishResult, Traffic]:
            with counter.measure() as traffic:
                started = time.monotonic()
                result = publish_location(s3, BUCKET, LOCATION, src)
                seconds = time.monotonic() - started
            return seconds, result, traffic

        full_s, full, full_t = timed()
        none_s, none, none_t = timed()
        rel = _changed(src, 1)
        one_s, one, one_t = timed()
        for label, seconds, result, traffic in (
            (f"first deploy, {FILES} files", full_s, full, full_t),
            ("deploy, nothing changed", none_s, none, none_t),
        ):
            rows.append(
                Row(
                    "5 deploy",
                    label,
                    f"{traffic.requests} requests, {result.uploaded} uploads, {seconds:.2f} s",
                    "-",
                    INFO,
                    cmd,
                    value=traffic.requests,
                    unit="requests",
                    details={"by_operation": traffic.by_operation, "seconds": seconds},
                )
            )
        ok = one.uploaded == 1 and one.manifest_written and one.deleted == 0
        est_ms = one_t.requests * S3_REQUEST_MS
        ops = ", ".join(f"{k} {v}" for k, v in sorted(one_t.by_operation.items()))
        rows.append(
            Row(
                "5 deploy",
                f"deploy, 1 of {FILES} files changed ({rel})",
                f"{one_t.requests} requests ({ops}), {one.uploaded} upload, {one_s:.2f} s on loopback "
                f"(~{est_ms / 1000 + one_s:.1f} s at {S3_REQUEST_MS} ms per S3 request, hashing included)",
                "changed file only + manifest",
                verdict(ok),
                cmd,
                value=one_s,
                unit="s",
                details={"requests": one_t.requests, "by_operation": one_t.by_operation},
            )
        )
        rows.append(_deploy_command(Path(tmp), src, endpoint, cmd))
    return rows


def _deploy_command(tmp: Path, src: Path, endpoint: str, cmd: str) -> Row:
    """The user's command, `invoke dags.deploy`, for one more changed file: wall time, process start included.

    It runs in a repository of its own (``DAGOPS_ROOT``) whose registry names the 1,000-file location.
    """
    import os
    import re
    import subprocess
    import sys

    from benchmarks.common import FAKE_CREDENTIALS

    root = tmp / "repo"
    (root / "code_locations").mkdir(parents=True)
    (root / "code_locations" / "locations.yaml").write_text(
        f"locations:\n- name: {LOCATION}\n  source: {src}\n  entry: definitions.py\n"
    )
    rel = _changed(src, 2)
    env = {**os.environ, **FAKE_CREDENTIALS, "DAGOPS_ROOT": str(root)}
    argv = [sys.executable, "-m", "invoke", "--search-root", str(Path(__file__).resolve().parents[1])]
    argv += ["dags.deploy", "--location", LOCATION, "--bucket", BUCKET, "--endpoint-url", endpoint]
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"invoke dags.deploy failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    found = re.search(r"(\d+) uploaded.*?(\d+) requests", proc.stdout)
    uploaded, requests = (int(found.group(1)), int(found.group(2))) if found else (-1, -1)
    return Row(
        "5 deploy",
        f"invoke dags.deploy, 1 of {FILES} files changed ({rel})",
        f"{seconds:.2f} s wall (Python and invoke start-up included), {requests} requests, {uploaded} upload",
        "changed file only + manifest",
        verdict(uploaded == 1),
        cmd,
        value=round(seconds, 3),
        unit="s",
        details={"stdout": proc.stdout[-500:]},
    )
