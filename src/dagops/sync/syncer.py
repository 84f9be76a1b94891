"""One sync step of one code location: manifest check, download, verify, import check, swap.

``Syncer.poll()`` is the whole step, usable as a library function (the agent's loop, ``once``, tests):

- GET ``dags/<location>/_manifest.json`` with ``IfNoneMatch`` = the ETag last handled: an idle poll is
  one small request answered 304, nothing downloaded;
- a new revision is built beside the live tree: unchanged files are hard-linked (after re-hashing them)
  from the serving release, changed ones downloaded and checked against the manifest's sha256 (a
  mismatch means a publish is under way or the object is corrupt: nothing is swapped, the next poll
  retries); files not in the manifest are simply not there;
- the project's Python requirements (pyproject.toml, setup.py/setup.cfg, requirements.txt) are
  installed into ``<code-dir>/.requirements`` (``dagops.requirements.location_env``; a cache hit when
  unchanged), then the tree is import-checked in a subprocess (``python -m dagops.sync.loadcheck``)
  with them on PYTHONPATH; a tree whose requirements do not install or that fails to load is
  discarded and its revision remembered as bad (not retried until a newer manifest appears), while
  the last good release keeps serving;
- a good tree is installed as ``releases/<revision>`` and ``current`` is swapped to it in one rename.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dagops import settings
from dagops.errors import DagopsError
from dagops.manifest import MANIFEST_NAME, Manifest, check_relpath, sha256_file
from dagops.requirements import location_env
from dagops.sync.layout import LocationDir
from dagops.sync.status import Status, now_iso, write_status

DOWNLOAD_WORKERS = 8
CHECK_TIMEOUT_SECONDS = 300.0

# Outcomes of one poll.
UNCHANGED = "unchanged"  # nothing new (304, or the manifest names what is served / a known-bad revision)
SWAPPED = "swapped"  # a new release is live
REJECTED = "rejected"  # the new revision failed its import check or its manifest is invalid
ABSENT = "absent"  # no manifest under dags/<location>/
UNREACHABLE = "unreachable"  # S3 failed (network, credentials, bucket); transient
INCOMPLETE = "incomplete"  # a download did not match the manifest; transient
LOCAL_ERROR = "local-error"  # the code folder could not be written (disk full, permissions); transient


class _Mismatch(Exception):
    pass


@dataclass
class PollResult:
    outcome: str
    revision: str | None = None
    message: str = ""
    downloaded: int = 0
    linked: int = 0
    bytes_downloaded: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def transient(self) -> bool:
        return self.outcome in (UNREACHABLE, INCOMPLETE, LOCAL_ERROR)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _s3_error_line(exc: Exception) -> str:
    code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
    if code == "NoSuchBucket":
        return "the S3 bucket does not exist"
    if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return f"access to S3 was denied ({code})"
    return _one_line(str(exc)) or type(exc).__name__


class Syncer:
    """Keeps ``<code_dir>/<location>/current`` in step with ``s3://<bucket>/dags/<location>/``."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        location: str,
        code_dir: Path,
        log: Callable[[str], None] | None = None,
        python: str = sys.executable,
        check_timeout: float = CHECK_TIMEOUT_SECONDS,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.location = location
        self.layout = LocationDir(code_dir, location)
        self.prefix = settings.location_prefix(location)
        self.log = log or (lambda line: None)
        self.python = python
        self.check_timeout = check_timeout
        # The import check: (tree, entry, env) -> None or the one-line error; ``env`` is the process
        # environment with the tree's requirements on PYTHONPATH. The agent swaps in a check that
        # leaves a warm code server behind (dagops.sync.codeserver.CodeServer.warm_check).
        self.checker: Callable[[Path, str, dict[str, str]], str | None] = self.import_check
        self.etag: str | None = None  # ETag of the last manifest fully handled (swapped, current or bad)
        self.bad_revision: str | None = None
        self.problem: str | None = None  # what is wrong with the latest manifest (None: all good)
        self.status = Status(location=location)
        self._requests = 0
        s3.meta.events.register("before-send.s3", self._count_request)

    def _count_request(self, **_: Any) -> None:
        self._requests += 1

    # ----------------------------------------------------------------- state
    @property
    def code_dir(self) -> Path:
        return self.layout.root.parent

    def serving_env(self) -> dict[str, str]:
        """The environment of a process importing ``current`` (its requirements: a cache hit)."""
        manifest = self.layout.current_manifest()
        entry = manifest.entry if manifest else None
        return location_env(self.layout.current, self.code_dir, log=self.log, entry=entry)

    @property
    def serving(self) -> str | None:
        return self.layout.current_revision()

    def prepare(self) -> None:
        """Clean what a crash left behind and record the starting state."""
        try:
            with self.layout.locked():
                self.layout.clean_incomplete()
        except OSError as exc:
            raise DagopsError(
                f"Cannot use the code folder {self.layout.root}: {exc.strerror or exc}."
            ) from None
        manifest = self.layout.current_manifest()
        self.status.revision = manifest.revision if manifest else None
        self.status.entry = manifest.entry if manifest else None
        self.status.state = "ok" if manifest else "starting"
        self.status.pid = os.getpid()
        self.save()

    def save(self) -> None:
        write_status(self.layout.root, self.status)

    # ------------------------------------------------------------------ poll
    def poll(self) -> PollResult:
        """One sync step. Never raises for S3 or user-code problems: they are the result's outcome."""
        started = time.monotonic()
        before = self._requests
        try:
            result = self._poll()
        except (OSError, DagopsError) as exc:
            result = PollResult(LOCAL_ERROR, self.serving, f"local: {_one_line(str(exc))}")
        result.requests = self._requests - before
        result.seconds = time.monotonic() - started
        self._record(result)
        return result

    def _poll(self) -> PollResult:
        key = self.prefix + MANIFEST_NAME
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if self.etag:
            kwargs["IfNoneMatch"] = self.etag
        try:
            response = self.s3.get_object(**kwargs)
            raw = response["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "304" or status == 304:
                return PollResult(UNCHANGED, self.serving)
            if code in {"NoSuchKey", "404"}:
                self.etag = None
                self.problem = (
                    f"no manifest at s3://{self.bucket}/{key} (location not published, or removed)"
                    + (f"; still serving {self.serving[:12]}" if self.serving else "")
                )
                return PollResult(ABSENT, self.serving, self.problem)
            return PollResult(UNREACHABLE, self.serving, f"S3: {_s3_error_line(exc)}")
        except BotoCoreError as exc:
            return PollResult(UNREACHABLE, self.serving, f"S3: {_s3_error_line(exc)}")
        etag = response.get("ETag")
        try:
            manifest = Manifest.from_json(raw, self.location)
        except DagopsError as exc:
            self.etag = etag
            self.problem = f"invalid manifest: {exc}"
            return PollResult(REJECTED, self.serving, self.problem)
        serving = self.layout.current_manifest()
        if serving and serving.revision == manifest.revision and serving.entry == manifest.entry:
            self.etag, self.problem = etag, None
            return PollResult(UNCHANGED, manifest.revision)
        if manifest.revision == self.bad_revision:
            self.etag = etag
            return PollResult(UNCHANGED, self.serving, self.problem or "")
        result = self._build_and_swap(manifest, serving)
        if not result.transient:
            self.etag = etag
        return result

    def _build_and_swap(self, manifest: Manifest, serving: Manifest | None) -> PollResult:
        revision = manifest.revision
        with self.layout.locked():
            kept = self.layout.release_manifest(revision) if self.layout.has_release(revision) else None
            reuse = kept is not None and kept.files == manifest.files and kept.entry == manifest.entry
            result = PollResult(SWAPPED, revision)
            build = None
            try:
                if not reuse:
                    build = self.layout.new_build_dir(revision)
                    self._fill(build, manifest, serving, result)
                    error = self._check(build, manifest.entry)
                    if error:
                        self.bad_revision = revision
                        self.problem = f"revision {revision[:12]} rejected, still serving " + (
                            f"{self.serving[:12]}: {error}" if self.serving else f"nothing: {error}"
                        )
                        return PollResult(REJECTED, self.serving, self.problem)
                    self.layout.install(build, manifest)
                    build = None
                self.layout.swap(revision)
                self.layout.prune()
            except _Mismatch as exc:
                return PollResult(INCOMPLETE, self.serving, str(exc))
            except (ClientError, BotoCoreError) as exc:
                return PollResult(UNREACHABLE, self.serving, f"S3: {_s3_error_line(exc)}")
            finally:
                if build is not None:
                    shutil.rmtree(build, ignore_errors=True)
        self.bad_revision, self.problem = None, None
        return result

    def _fill(self, build: Path, manifest: Manifest, serving: Manifest | None, result: PollResult) -> None:
        """Populate ``build`` with exactly the manifest's files: link unchanged ones, download the rest."""
        current_root = self.layout.current
        to_download = []
        for rel, item in manifest.files.items():
            check_relpath(rel)
            target = build / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            old = serving.files.get(rel) if serving else None
            source = current_root / rel
            if old == item and source.is_file() and sha256_file(source) == item.sha256:
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copy2(source, target)
                result.linked += 1
            else:
                to_download.append(rel)

        def download(rel: str) -> int:
            item = manifest.files[rel]
            try:
                response = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + rel)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in {"NoSuchKey", "404"}:
                    raise _Mismatch(
                        f"{rel} of revision {manifest.revision[:12]} is missing in S3; will retry"
                    ) from None
                raise
            digest = hashlib.sha256()
            size = 0
            with (build / rel).open("wb") as fh:
                for chunk in response["Body"].iter_chunks(1024 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            if digest.hexdigest() != item.sha256:
                raise _Mismatch(
                    f"{rel} in S3 does not match manifest revision {manifest.revision[:12]} "
                    "(a publish under way, or a corrupt object); not swapping, will retry"
                )
            return size

        if to_download:
            with ThreadPoolExecutor(max_workers=min(DOWNLOAD_WORKERS, len(to_download))) as pool:
                for size in pool.map(download, sorted(to_download)):
                    result.downloaded += 1
                    result.bytes_downloaded += size

    def _check(self, build: Path, entry: str) -> str | None:
        """Install the build's requirements, then import-check it with them; None or the one-line error."""
        try:
            env = location_env(build, self.code_dir, log=self.log, entry=entry)
        except DagopsError as exc:
            return _one_line(str(exc))
        return self.checker(build, entry, env)

    def import_check(self, tree: Path, entry: str, env: dict[str, str] | None = None) -> str | None:
        """None when ``tree`` loads, else the one-line error of ``python -m dagops.sync.loadcheck``."""
        try:
            proc = subprocess.run(
                [self.python, "-m", "dagops.sync.loadcheck", str(tree), entry, self.location],
                capture_output=True,
                text=True,
                timeout=self.check_timeout,
                cwd=tree,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"import check timed out after {self.check_timeout:.0f}s"
        if proc.returncode == 0:
            return None
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return _one_line(lines[-1]) if lines else f"import check failed with exit code {proc.returncode}"

    # ---------------------------------------------------------------- status
    def _record(self, result: PollResult) -> None:
        status = self.status
        status.last_poll = now_iso()
        status.bad_revision = self.bad_revision
        manifest = self.layout.current_manifest()
        status.revision = manifest.revision if manifest else None
        status.entry = manifest.entry if manifest else None
        if result.outcome == SWAPPED:
            status.last_change = status.last_poll
        if result.transient:
            error: str | None = result.message
        else:
            error = self.problem
        if error:
            status.state = "error"
            status.last_error = error
            status.consecutive_failures += 1
        else:
            status.state = "ok" if status.revision else "starting"
            status.consecutive_failures = 0
        self.save()
