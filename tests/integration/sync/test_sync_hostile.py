"""Hostile S3 content against the sync agent: any manifest bytes, oversized or wrong objects, local errors.

Each class is tried with several inputs; for every one the agent must reject with one line, keep serving
the last good release, keep polling, and not download the same bytes again on the next poll.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from polling import wait_for
from synctrees import GOOD_TREE, agent_env, tree_contents, write_tree

from dagops.manifest import MAX_FILE_BYTES, MAX_MANIFEST_BYTES, FileEntry, revision_of
from dagops.runtime.sync import syncer as syncer_mod
from dagops.runtime.sync.download import receive
from dagops.runtime.sync.status import read_status
from dagops.runtime.sync.syncer import INCOMPLETE, REJECTED, SWAPPED, UNCHANGED, Syncer

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket

MANIFEST_KEY = "dags/main/_manifest.json"


class Sent:
    """Every S3 request a client sends: (operation, key, HTTP status of the answer)."""

    def __init__(self, s3: Any) -> None:
        self.calls: list[tuple[str, str, int]] = []
        s3.meta.events.register("before-parameter-build.s3", self._before)
        s3.meta.events.register("after-call.s3", self._after)

    def _before(self, params: Any, context: Any, **_: Any) -> None:
        context["hostile_key"] = params.get("Key", "")

    def _after(self, model: Any, http_response: Any, context: Any, **_: Any) -> None:
        self.calls.append((model.name, context.get("hostile_key", ""), http_response.status_code))

    def downloads(self) -> list[tuple[str, int]]:
        """GetObject calls of files (not the manifest) that were answered with a body."""
        return [(key, status) for op, key, status in self.calls if op == "GetObject" and key != MANIFEST_KEY]


@pytest.fixture
def served(s3: Any, bucket: str, publish: Any, source: Path, code_dir: Path) -> tuple[Syncer, str]:
    """A syncer serving a good first release (the last good one every hostile input must leave in place)."""
    syncer = Syncer(s3, bucket, "main", code_dir)
    syncer.prepare()
    published = publish(source)
    assert syncer.poll().outcome == SWAPPED
    return syncer, published.revision


def _manifest(files: dict[str, Any], /, **overrides: Any) -> dict[str, Any]:
    entries = {
        rel: FileEntry(meta["sha256"], 0)
        for rel, meta in files.items()
        if isinstance(meta, dict) and "sha256" in meta
    }
    body = {
        "format": 2,
        "location": "main",
        "entry": "definitions.py",
        "revision": revision_of(entries),
        "created_at": "2026-01-01T00:00:00Z",
        "files": files,
    }
    body.update(overrides)
    return body


SHA = hashlib.sha256(b"x").hexdigest()
GOOD_FILES = {"definitions.py": {"sha256": SHA, "size": 1}}


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


# Class 1: bytes in _manifest.json. Each must be a rejected revision, never an exception.
HOSTILE_MANIFESTS: dict[str, bytes] = {
    "nested-arrays": b"[" * 200_000 + b"]" * 200_000,
    "nested-objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "nested-in-files": _json(_manifest({"definitions.py": {"sha256": SHA, "size": 1}}))[:-2]
    + b',"x":'
    + b"[" * 50_000
    + b"]" * 50_000
    + b"}}",
    "too-large": b" " * (MAX_MANIFEST_BYTES + 1) + b"{}",
    "empty": b"",
    "not-utf8": b'{"format": 2, "location": "main\xff\xfe"}',
    "utf16": json.dumps(_manifest(GOOD_FILES)).encode("utf-16"),
    "latin1-name": json.dumps(
        _manifest({"d\xe9f.py": {"sha256": SHA, "size": 1}}), ensure_ascii=False
    ).encode("latin-1"),
    "a-list": b"[1, 2, 3]",
    "a-string": b'"manifest"',
    "null": b"null",
    "number": b"2",
    "duplicate-files-key": (
        b'{"format": 2, "location": "main", "entry": "definitions.py", "revision": "'
        + revision_of({"definitions.py": FileEntry(SHA, 1)}).encode()
        + b'", "files": {"other.py": {"sha256": "'
        + SHA.encode()
        + b'", "size": 1}}, "files": {"definitions.py": {"sha256": "'
        + SHA.encode()
        + b'", "size": 1}}}'
    ),
    "duplicate-file-entry": (
        b'{"format": 2, "location": "main", "entry": "definitions.py", "revision": "'
        + revision_of({"definitions.py": FileEntry(SHA, 1)}).encode()
        + b'", "files": {"definitions.py": {"sha256": "'
        + b"0" * 64
        + b'", "size": 1}, "definitions.py": {"sha256": "'
        + SHA.encode()
        + b'", "size": 1}}}'
    ),
    "format-true": _json(_manifest(GOOD_FILES, format=True)),
    "format-float": _json(_manifest(GOOD_FILES, format=2.0)),
    "format-string": _json(_manifest(GOOD_FILES, format="2")),
    "size-true": _json(_manifest({"definitions.py": {"sha256": SHA, "size": True}})),
    "size-float": _json(_manifest({"definitions.py": {"sha256": SHA, "size": 1.0}})),
    "size-string": _json(_manifest({"definitions.py": {"sha256": SHA, "size": "1"}})),
    "size-negative": _json(_manifest({"definitions.py": {"sha256": SHA, "size": -1}})),
    "size-huge": _json(_manifest({"definitions.py": {"sha256": SHA, "size": MAX_FILE_BYTES + 1}})),
    "size-5000-digits": _json(_manifest({"definitions.py": {"sha256": SHA, "size": 1}})).replace(
        b'"size": 1', b'"size": ' + b"9" * 5000
    ),
    "size-nan": _json(_manifest({"definitions.py": {"sha256": SHA, "size": 1}})).replace(
        b'"size": 1', b'"size": NaN'
    ),
    "size-infinity": _json(_manifest({"definitions.py": {"sha256": SHA, "size": 1}})).replace(
        b'"size": 1', b'"size": 1e999'
    ),
    "sha-uppercase": _json(_manifest({"definitions.py": {"sha256": SHA.upper(), "size": 1}})),
    "sha-list": _json(_manifest({"definitions.py": {"sha256": [SHA], "size": 1}})),
    "files-a-list": _json(_manifest(GOOD_FILES, files=[["definitions.py", SHA, 1]])),
    "entry-a-number": _json(_manifest(GOOD_FILES, entry=7)),
    "entry-nested": _json(_manifest(GOOD_FILES, entry={"a": [1]})),
    "location-a-list": _json(_manifest(GOOD_FILES, location=["main"])),
    "created-at-object": _json(_manifest(GOOD_FILES, created_at={"t": 1})),
    "revision-a-number": _json(_manifest(GOOD_FILES, revision=1)),
    "name-newline": _json(_manifest({**GOOD_FILES, "a\nb.py": {"sha256": SHA, "size": 1}})),
    "name-nul": _json(_manifest({**GOOD_FILES, "a\x00b.py": {"sha256": SHA, "size": 1}})),
    "name-backslash": _json(_manifest({**GOOD_FILES, "a\\b.py": {"sha256": SHA, "size": 1}})),
    "name-reserved": _json(_manifest({**GOOD_FILES, "_manifest.json": {"sha256": SHA, "size": 1}})),
    "name-traversal": _json(_manifest({**GOOD_FILES, "../../x.py": {"sha256": SHA, "size": 1}})),
    "name-absolute": _json(_manifest({**GOOD_FILES, "/etc/x.py": {"sha256": SHA, "size": 1}})),
    "name-too-long": _json(_manifest({**GOOD_FILES, "a" * 256 + ".py": {"sha256": SHA, "size": 1}})),
    "name-lone-surrogate": _json(_manifest({**GOOD_FILES, "a\udcffb.py": {"sha256": SHA, "size": 1}})),
}


def test_no_manifest_bytes_kill_the_agent_and_each_is_rejected_once(
    s3: Any, bucket: str, served: tuple[Syncer, str], source: Path, code_dir: Path
) -> None:
    syncer, good = served
    sent = Sent(s3)
    failures = []
    for name, body in HOSTILE_MANIFESTS.items():
        s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=body)
        sent.calls.clear()
        first = syncer.poll()
        again = syncer.poll()
        verdict = (
            first.outcome == REJECTED
            and first.message.startswith("invalid manifest: ")
            and "\n" not in first.message
            and syncer.serving == good
            and again.outcome == UNCHANGED  # a 304: the same bytes are not read again
            and [status for op, _k, status in sent.calls if op == "GetObject"][-1] == 304
            and not sent.downloads()
            and read_status(code_dir / "main").last_error == first.message  # type: ignore[union-attr]
        )
        if not verdict:
            failures.append((name, first.outcome, first.message[:120], again.outcome))
    assert not failures, failures
    assert tree_contents(code_dir / "main" / "current") == tree_contents(source)
    print(f"hostile manifests tried: {len(HOSTILE_MANIFESTS)}")


def test_an_announced_oversized_manifest_is_not_read(
    s3: Any, bucket: str, served: tuple[Syncer, str]
) -> None:
    """The Content-Length is checked first: a 17 MB manifest is refused without reading its body."""
    syncer, good = served
    s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=b"{" + b" " * MAX_MANIFEST_BYTES + b"}")
    result = syncer.poll()
    assert (result.outcome, syncer.serving) == (REJECTED, good)
    assert f"larger than {MAX_MANIFEST_BYTES} bytes" in result.message


def _tampered(source: Path, rel: str, content: bytes) -> None:
    (source / rel).write_bytes(content)


# Class 2: objects that do not match their manifest entry. (name, what S3 holds for pipelines/assets.py)
WRONG_OBJECTS = {
    "larger": lambda good: good + b"#" * (3 * 1024 * 1024),
    "smaller": lambda good: good[: len(good) // 2],
    "same-size-other-bytes": lambda good: bytes(reversed(good)),
    "empty": lambda good: b"",
    "one-byte-more": lambda good: good + b"\n",
}


@pytest.mark.parametrize("kind", sorted(WRONG_OBJECTS))
def test_a_wrong_object_is_downloaded_at_most_once_and_never_past_its_size(
    kind: str, s3: Any, bucket: str, publish: Any, served: tuple[Syncer, str], source: Path, code_dir: Path
) -> None:
    syncer, good = served
    write_tree(source, {"pipelines/assets.py": GOOD_TREE["pipelines/assets.py"].replace("3]", "3, 4]")})
    new = publish(source)
    right = (source / "pipelines" / "assets.py").read_bytes()
    s3.put_object(Bucket=bucket, Key="dags/main/pipelines/assets.py", Body=WRONG_OBJECTS[kind](right))
    sent = Sent(s3)
    first = syncer.poll()
    assert (first.outcome, syncer.serving) == (INCOMPLETE, good)
    assert "does not match" in first.message and "\n" not in first.message
    assert first.bytes_downloaded == 0
    assert sent.downloads() == [("dags/main/pipelines/assets.py", 200)]
    # The next polls ask for the bad object only if it changed: 304, nothing downloaded again.
    for _ in range(3):
        sent.calls.clear()
        again = syncer.poll()
        assert (again.outcome, syncer.serving) == (INCOMPLETE, good)
        assert sent.downloads() == [("dags/main/pipelines/assets.py", 304)]
        assert again.bytes_downloaded == 0
    # The object lands: only it is fetched, the rest was kept, and the new release is served.
    s3.put_object(Bucket=bucket, Key="dags/main/pipelines/assets.py", Body=right)
    sent.calls.clear()
    done = syncer.poll()
    assert (done.outcome, done.revision) == (SWAPPED, new.revision), done.message
    assert sent.downloads() == [("dags/main/pipelines/assets.py", 200)]
    assert done.bytes_downloaded == len(right)


def test_a_missing_object_costs_one_request_per_poll_and_recovers(
    s3: Any, bucket: str, publish: Any, served: tuple[Syncer, str], source: Path
) -> None:
    syncer, good = served
    write_tree(source, {"helpers/late.py": "LATE = 1\n"})
    new = publish(source)
    s3.delete_object(Bucket=bucket, Key="dags/main/helpers/late.py")
    sent = Sent(s3)
    for _ in range(3):
        sent.calls.clear()
        result = syncer.poll()
        assert (result.outcome, syncer.serving) == (INCOMPLETE, good)
        assert "missing" in result.message
        assert [k for k, status in sent.downloads() if status == 200] == []
    s3.put_object(Bucket=bucket, Key="dags/main/helpers/late.py", Body=b"LATE = 1\n")
    assert syncer.poll().revision == new.revision


class _Counting(io.BytesIO):
    """A body that counts the bytes taken from it."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


@pytest.mark.parametrize(
    ("declared", "held", "announced"),
    [
        (10, 10 * 1024 * 1024, False),  # a body far longer than declared, no Content-Length
        (0, 5 * 1024 * 1024, False),  # declared empty
        (1024 * 1024, 1024 * 1024 + 1, False),  # one byte over, across the chunk size
        (10, 10 * 1024 * 1024, True),  # announced too long: nothing read at all
        (MAX_FILE_BYTES, 100, True),  # a huge declared size with a small object: refused before reading
    ],
)
def test_receive_never_reads_past_the_declared_size(
    declared: int, held: int, announced: bool, tmp_path: Path
) -> None:
    raw = _Counting(b"x" * held)
    body = StreamingBody(raw, held)
    response: dict[str, Any] = {"Body": body}
    if announced:
        response["ContentLength"] = held
    size, ok = receive(response, tmp_path / "f", declared, "0" * 64)
    assert not ok
    assert raw.taken <= declared + 1 and size <= declared + 1
    if announced:
        assert raw.taken == 0 and not (tmp_path / "f").exists()
    else:
        assert (tmp_path / "f").stat().st_size <= declared


# Class 7: local errors while building are a rejected revision, not a download every poll.
def test_a_name_too_long_for_the_disk_is_rejected_once(
    s3: Any, bucket: str, publish: Any, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A code folder whose path is so long that a deep file of the tree exceeds PATH_MAX (ENAMETOOLONG).
    deep = tmp_path
    while len(str(deep)) < 3700:
        deep = deep / ("d" * 200)
    deep.mkdir(parents=True)
    write_tree(source, {"/".join(["p" * 60] * 6) + "/x.py": "X = 1\n"})
    publish(source)
    syncer = Syncer(s3, bucket, "main", deep)
    syncer.prepare()
    sent = Sent(s3)
    first = syncer.poll()
    assert first.outcome == REJECTED and "File name too long" in first.message and "\n" not in first.message
    assert syncer.serving is None
    downloads = len(sent.downloads())
    for _ in range(3):
        again = syncer.poll()
        assert again.outcome == UNCHANGED and again.requests == 1  # a 304 on the manifest, nothing else
    assert len(sent.downloads()) == downloads
    assert read_status(deep / "main").last_error == first.message  # type: ignore[union-attr]
    assert not [p for p in (deep / "main" / "releases").iterdir() if p.name.startswith(".build-")]
    # After the retry delay (LOCAL_RETRY_SECONDS) it is tried again, once: the condition may be gone.
    monkeypatch.setattr(
        syncer_mod.time, "monotonic", lambda: time.time() + 10 * syncer_mod.LOCAL_RETRY_SECONDS
    )
    sent.calls.clear()
    assert syncer.poll().outcome == REJECTED
    assert len(sent.downloads()) == downloads


# The agent under a 64 KiB file-size limit; SIGXFSZ ignored, so a longer write fails with EFBIG.
LIMITED = (
    "import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); sys.argv[0] = 'dagops.runtime.sync'; "
    "runpy.run_module('dagops.runtime.sync', run_name='__main__')"
)


def test_disk_full_during_once_is_one_line_and_a_rejected_revision(
    moto_endpoint: str, s3: Any, bucket: str, publish: Any, source: Path, code_dir: Path
) -> None:
    """A write the file system refuses (EFBIG under a file-size limit, as ENOSPC would be): exit 1, one
    line, no traceback, nothing served half-built."""
    write_tree(source, {"data/big.csv": "a,b\n" * 40_000})
    publish(source)
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, "once", "--location", "main", "--code-dir", str(code_dir)],
        env=agent_env(moto_endpoint, bucket, PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    assert "File too large" in output and "rejected" in output
    assert not (code_dir / "main" / "current").exists()
    assert not [p for p in (code_dir / "main" / "releases").iterdir() if p.name.startswith(".build-")]


def _new_error(code_dir: Path, previous: str | None) -> str | None:
    status = read_status(code_dir / "main")
    error = status.last_error if status else None
    return error if error and error != previous else None


# The command lines: `once` and `run` with hostile manifests, and `run` keeps polling.
CLI_SAMPLES = ["nested-arrays", "not-utf8", "duplicate-files-key", "size-true", "name-newline", "too-large"]


def test_once_never_prints_a_traceback(
    moto_endpoint: str, s3: Any, bucket: str, served: tuple[Syncer, str], code_dir: Path
) -> None:
    _syncer, good = served
    for name in CLI_SAMPLES:
        s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=HOSTILE_MANIFESTS[name])
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dagops.runtime.sync",
                "once",
                "--location",
                "main",
                "--code-dir",
                str(code_dir),
            ],
            env=agent_env(moto_endpoint, bucket),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1, (name, output)
        assert "Traceback" not in output, (name, output)
        assert "invalid manifest" in output, (name, output)
        assert os.readlink(code_dir / "main" / "current").endswith(good)


def test_run_keeps_polling_through_hostile_manifests_then_serves_a_good_one(
    moto_endpoint: str,
    s3: Any,
    bucket: str,
    publish: Any,
    served: tuple[Syncer, str],
    source: Path,
    code_dir: Path,
) -> None:
    _syncer, good = served
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagops.runtime.sync",
            "run",
            "--location",
            "main",
            "--code-dir",
            str(code_dir),
            "--interval",
            "0.2",
            "--no-code-server",
        ],
        env=agent_env(moto_endpoint, bucket),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        errors = []
        for name in CLI_SAMPLES:
            s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=HOSTILE_MANIFESTS[name])
            previous = errors[-1] if errors else None
            errors.append(
                wait_for(
                    lambda previous=previous: _new_error(code_dir, previous),
                    30,
                    f"the agent to reject {name}",
                    proc,
                )
            )
            assert os.readlink(code_dir / "main" / "current").endswith(good)
        assert all(error.startswith("invalid manifest: ") for error in errors), errors
        # The publish replaces the hostile manifest (the last one: 16 MiB) and the agent serves it.
        write_tree(
            source, {"definitions.py": textwrap.dedent(GOOD_TREE["definitions.py"]) + "# after the storm\n"}
        )
        new = publish(source)
        try:
            wait_for(
                lambda: os.readlink(code_dir / "main" / "current").endswith(new.revision),
                120,
                "the good release",
                proc,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; status: {read_status(code_dir / 'main')}") from None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
