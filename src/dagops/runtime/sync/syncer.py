"""One sync step of one code location: manifest check, download, verify, import check, swap.

``Syncer.poll()`` is the whole step, usable as a library function (the agent's loop, ``once``, tests):

- GET ``dags/<location>/_manifest.json`` with ``IfNoneMatch`` = the ETag last handled: an idle poll is
  one small request answered 304, nothing downloaded;
- the manifest is read with a bound (``dagops.manifest.MAX_MANIFEST_BYTES``) and any content that is
  not a valid manifest (size, nesting, types, duplicate keys, bad names) rejects that manifest with
  one line, remembered by its ETag: the next polls are 304s until it changes;
- a new revision is built beside the live tree: unchanged files are hard-linked (after re-hashing them)
  from the serving release, changed ones downloaded and checked against the manifest's sha256 and
  size; a download never reads more than the size the manifest declares. A mismatch (a publish under
  way, or a corrupt object) swaps nothing; the verified files stay in the build for the next poll,
  which asks S3 for a mismatching object only if it changed (``IfNoneMatch`` on its ETag), so the same
  bad bytes are never downloaded twice; files not in the manifest are simply not there;
- a local error while building (disk full, a name too long for the file system) rejects the manifest
  like an invalid one (no download loop), tried again when it changes or after ``LOCAL_RETRY_SECONDS``;
- the project's Python requirements (pyproject.toml, setup.py/setup.cfg, requirements.txt) are
  installed into ``<code-dir>/.requirements`` (``dagops.runtime.requirements.location_env``; a cache hit when
  unchanged), then the tree is import-checked in a subprocess (``python -m dagops.runtime.sync.loadcheck``)
  with them on PYTHONPATH; a tree whose requirements do not install or that fails to load is
  discarded and its revision remembered as bad (not retried until a newer manifest appears), while
  the last good release keeps serving;
- a good tree is installed as ``releases/<revision>`` and ``current`` is swapped to it in one rename.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dagops import settings
from dagops.errors import DagopsError
from dagops.manifest import MANIFEST_NAME, Manifest, check_relpath, read_bounded, sha256_file
from dagops.runtime.requirements import location_env
from dagops.runtime.sync.download import Downloads, Mismatch, error_code
from dagops.runtime.sync.layout import LocationDir
from dagops.runtime.sync.status import Status, now_iso, write_status

CHECK_TIMEOUT_SECONDS = 300.0
LOCAL_RETRY_SECONDS = 600.0  # a manifest rejected for a local error (disk full) is tried again after this

# Outcomes of one poll.
UNCHANGED = "unchanged"  # nothing new (304, or the manifest names what is served / a known-bad revision)
SWAPPED = "swapped"  # a new release is live
REJECTED = "rejected"  # the new revision failed its import check or its manifest is invalid
ABSENT = "absent"  # no manifest under dags/<location>/
UNREACHABLE = "unreachable"  # S3 failed (network, credentials, bucket); transient
INCOMPLETE = "incomplete"  # a download did not match the manifest; transient
LOCAL_ERROR = "local-error"  # the code folder could not be written (disk full, permissions); transient


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
    check_seconds: float = 0.0  # of ``seconds``: requirements and the import check

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
        # leaves a warm code server behind (dagops.runtime.sync.codeserver.CodeServer.warm_check).
        self.checker: Callable[[Path, str, dict[str, str]], str | None] = self.import_check
        self.etag: str | None = None  # ETag of the last manifest fully handled (swapped, current or bad)
        self.bad_revision: str | None = None
        self.problem: str | None = None  # what is wrong with the latest manifest (None: all good)
        # A build that stopped at a download mismatch: (revision, folder), its verified files kept for
        # the next attempt; the downloads remember the ETag of each object that did not match.
        self._partial: tuple[str, Path] | None = None
        self._downloads = Downloads(s3, bucket, self.prefix)
        self._retry_at: float | None = None  # when a manifest rejected for a local error is tried again
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
        except Exception as exc:  # the loop must outlive any input: one line, the last good release serving
            result = PollResult(
                LOCAL_ERROR, self.serving, f"unexpected {type(exc).__name__}: {_one_line(str(exc))}"
            )
        result.requests = self._requests - before
        result.seconds = time.monotonic() - started
        self._record(result)
        return result

    def _poll(self) -> PollResult:
        key = self.prefix + MANIFEST_NAME
        if self._retry_at is not None and time.monotonic() >= self._retry_at:
            self.etag, self._retry_at = None, None  # a local error may be gone (disk freed): look again
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if self.etag:
            kwargs["IfNoneMatch"] = self.etag
        etag: str | None = None
        try:
            response = self.s3.get_object(**kwargs)
            etag = response.get("ETag")
            raw = read_bounded(response)
        except ClientError as exc:
            code, status = error_code(exc)
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
        except DagopsError as exc:  # announced as larger than a manifest may be: not read
            return self._invalid(etag, exc)
        try:
            manifest = Manifest.from_json(raw, self.location)
        except DagopsError as exc:
            return self._invalid(etag, exc)
        if self._partial is not None and self._partial[0] != manifest.revision:
            self._drop_partial()  # superseded (another agent on this folder may have served a newer one)
        serving = self.layout.current_manifest()
        if serving and serving.revision == manifest.revision and serving.entry == manifest.entry:
            self._drop_partial()
            self.etag, self.problem = etag, None
            return PollResult(UNCHANGED, manifest.revision)
        if manifest.revision == self.bad_revision:
            self.etag = etag
            return PollResult(UNCHANGED, self.serving, self.problem or "")
        result = self._build_and_swap(manifest, serving)
        if not result.transient:
            self.etag = etag
        return result

    def _invalid(self, etag: str | None, exc: DagopsError) -> PollResult:
        """A manifest that is not one: rejected (remembered by its ETag), the last good release serving."""
        self.etag = etag
        self.problem = f"invalid manifest: {_one_line(str(exc))}" + (
            f"; still serving {self.serving[:12]}" if self.serving else ""
        )
        return PollResult(REJECTED, self.serving, self.problem)

    def _build_dir(self, revision: str) -> Path:
        """The build folder of ``revision``: the partial one a mismatch left, or a new one."""
        if self._partial is not None:
            partial_revision, path = self._partial
            if partial_revision == revision and path.is_dir():
                return path
            self._drop_partial()
        return self.layout.new_build_dir(revision)

    def _drop_partial(self) -> None:
        if self._partial is not None:
            shutil.rmtree(self._partial[1], ignore_errors=True)
        self._partial = None
        self._downloads.forget()

    def _build_and_swap(self, manifest: Manifest, serving: Manifest | None) -> PollResult:
        revision = manifest.revision
        with self.layout.locked():
            kept = self.layout.release_manifest(revision) if self.layout.has_release(revision) else None
            reuse = kept is not None and kept.files == manifest.files and kept.entry == manifest.entry
            result = PollResult(SWAPPED, revision)
            build = None
            try:
                if not reuse:
                    build = self._build_dir(revision)
                    self._partial = None
                    self._fill(build, manifest, serving, result)
                    checking = time.monotonic()
                    error = self._check(build, manifest.entry)
                    result.check_seconds = time.monotonic() - checking
                    if error:
                        self.bad_revision = revision
                        self.problem = f"revision {revision[:12]} rejected, still serving " + (
                            f"{self.serving[:12]}: {error}" if self.serving else f"nothing: {error}"
                        )
                        return PollResult(REJECTED, self.serving, self.problem)
                    self.layout.install(build, manifest)
                    build = None
                else:
                    self._drop_partial()  # another agent installed this revision meanwhile
                self.layout.swap(revision)
                self.layout.prune()
            except Mismatch as exc:
                # Keep what was verified; the next attempt downloads only what is missing or changed.
                if build is not None:
                    self._partial, build = (revision, build), None
                return PollResult(INCOMPLETE, self.serving, str(exc))
            except (ClientError, BotoCoreError) as exc:
                if build is not None:
                    self._partial, build = (revision, build), None
                return PollResult(UNREACHABLE, self.serving, f"S3: {_s3_error_line(exc)}")
            except OSError as exc:
                # Disk full, a name too long for this file system, permissions: not retried every poll.
                self._downloads.forget()
                self._retry_at = time.monotonic() + LOCAL_RETRY_SECONDS
                reason = f"{exc.strerror or type(exc).__name__}" + (
                    f" ({Path(exc.filename).name[:80]})" if isinstance(exc.filename, str) else ""
                )
                self.problem = (
                    f"revision {revision[:12]} rejected, still serving "
                    + (self.serving[:12] if self.serving else "nothing")
                    + f": local error writing the code folder: {reason}; tried again when the manifest "
                    f"changes or in {LOCAL_RETRY_SECONDS / 60:.0f} min"
                )
                return PollResult(REJECTED, self.serving, self.problem)
            finally:
                if build is not None:
                    shutil.rmtree(build, ignore_errors=True)
        self.bad_revision, self.problem, self._retry_at = None, None, None
        self._downloads.forget()
        return result

    def _fill(self, build: Path, manifest: Manifest, serving: Manifest | None, result: PollResult) -> None:
        """Populate ``build`` with exactly the manifest's files: link unchanged ones, download the rest."""
        current_root = self.layout.current
        to_download = []
        for rel, item in manifest.files.items():
            check_relpath(rel)
            target = build / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and not target.is_symlink() and sha256_file(target) == item.sha256:
                result.linked += 1  # verified by an earlier attempt at this revision
                continue
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

        for size in self._downloads.fetch_all(build, manifest, to_download):
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
        """None when ``tree`` loads, else the one-line error of ``python -m ...sync.loadcheck``."""
        try:
            proc = subprocess.run(
                [self.python, "-m", "dagops.runtime.sync.loadcheck", str(tree), entry, self.location],
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
