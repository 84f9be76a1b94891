"""Publish a code location's source folder to S3: changed files only, manifest written last.

``python -m dagops.publish --location NAME --source DIR [--entry FILE]`` publishes to the bucket named by
``DAGSTER_S3_BUCKET`` (``AWS_ENDPOINT_URL`` points boto3 at a local S3 endpoint).

A file is unchanged only when its content is: its manifest entry matches and the object listed in S3
holds the same bytes (ETag = MD5 for a single-part object; the stored sha256 for a multipart one).
Sizes are never trusted alone.

Order of writes, chosen so that a sync agent never trusts a half-written location:
1. changed files are uploaded (a sync agent still trusts the old manifest, and checks every download's
   sha256 against it, so a file overwritten early is never served under the old revision);
2. the manifest is written, conditionally on the manifest read at the start (``IfMatch``/``IfNoneMatch``):
   if another publish wrote it meanwhile, this one fails instead of silently overwriting it;
3. keys no longer in the manifest are deleted (no manifest references them any more).
A lease object (``_publish.lock``, created with ``IfNoneMatch: *``) keeps two publishes of the same
location from interleaving their uploads; a lease older than ``LOCK_TTL_SECONDS`` is taken over.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagops import settings
from dagops.errors import DagopsError
from dagops.manifest import LOCK_NAME, MANIFEST_NAME, FileEntry, Manifest, build
from dagops.names import validate_location_name
from dagops.published import error_code, list_keys, manifest_etag, needs_upload, read_manifest

LOCK_TTL_SECONDS = 900
UPLOAD_WORKERS = 8
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass
class PublishResult:
    location: str
    bucket: str
    revision: str
    uploaded: int = 0
    deleted: int = 0
    unchanged: int = 0
    requests: int = 0
    bytes_uploaded: int = 0
    manifest_written: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        what = f"revision {self.revision[:12]}" + ("" if self.manifest_written else " (already published)")
        return (
            f"{self.location}: {self.uploaded} uploaded, {self.deleted} deleted, {self.unchanged} unchanged, "
            f"{what}, {self.requests} requests, {self.bytes_uploaded} bytes, {self.seconds:.2f}s"
        )


def _s3_problem(exc: Exception, bucket: str, doing: str) -> DagopsError:
    """A one-sentence DagopsError for a boto3/botocore failure."""
    code = error_code(exc)
    if code == "NoSuchBucket":
        return DagopsError(f"The S3 bucket {bucket!r} does not exist (while {doing}).")
    if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return DagopsError(f"Access to S3 bucket {bucket!r} was denied while {doing} ({code}).")
    # botocore's messages can span lines ("Parameter validation failed:\n<the reason>"): keep them all.
    detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return DagopsError(f"S3 failed while {doing} in bucket {bucket!r}: {detail}.")


class _RequestCounter:
    """Counts the HTTP requests a boto3 client sends (retries included) while attached."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.count = 0

    def __call__(self, **_: Any) -> None:
        self.count += 1

    def __enter__(self) -> _RequestCounter:
        self.s3.meta.events.register("before-send.s3", self)
        return self

    def __exit__(self, *_: object) -> None:
        self.s3.meta.events.unregister("before-send.s3", self)


def _delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise DagopsError(f"S3 refused to delete {first.get('Key')!r}: {first.get('Message')}.")


class _Lease:
    """A publish lease on one location: ``dags/<location>/_publish.lock`` created only if absent."""

    def __init__(self, s3: Any, bucket: str, location: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.location = location
        self.key = settings.location_prefix(location) + LOCK_NAME
        self.held = False

    def __enter__(self) -> _Lease:
        from botocore.exceptions import ClientError

        body = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}, sort_keys=True
        ).encode()
        for attempt in range(2):
            try:
                self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body, IfNoneMatch="*")
                self.held = True
                return self
            except ClientError as exc:
                if error_code(exc) not in _PRECONDITION_CODES:
                    raise
            holder = self._holder()
            age = time.time() - float(holder.get("since", 0) or 0)
            if attempt == 0 and age > LOCK_TTL_SECONDS:
                # A publish that died without releasing its lease; take it over.
                self.s3.delete_object(Bucket=self.bucket, Key=self.key)
                continue
            raise DagopsError(
                f"Another publish of code location {self.location!r} is in progress "
                f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, {int(age)}s ago); "
                "run again when it has finished."
            )
        raise AssertionError("unreachable")

    def _holder(self) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            data = json.loads(self.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())
            return data if isinstance(data, dict) else {}
        except (ClientError, ValueError):
            return {}

    def __exit__(self, *_: object) -> None:
        if self.held:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key)
            self.held = False


def publish_location(
    s3: Any, bucket: str, location: str, source_dir: Path | str, entry: str = "definitions.py"
) -> PublishResult:
    """Publish ``source_dir`` as code location ``location``: upload what changed, write the manifest last.

    Nothing is written when nothing changed. Raises DagopsError (with nothing written) on bad input.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.monotonic()
    validate_location_name(location)
    manifest, paths = build(location, Path(source_dir), entry)
    prefix = settings.location_prefix(location)
    manifest_key = prefix + MANIFEST_NAME
    result = PublishResult(location=location, bucket=bucket, revision=manifest.revision)
    doing = f"publishing code location {location!r}"
    with _RequestCounter(s3) as counter:
        try:
            old, old_etag = read_manifest(s3, bucket, location)
            listed = list_keys(s3, bucket, prefix)
            old_files = old.files if old else {}
            upload = [
                rel
                for rel, item in manifest.files.items()
                if needs_upload(
                    s3, bucket, prefix + rel, item, old_files.get(rel), listed.get(prefix + rel), paths[rel]
                )
            ]
            wanted = {prefix + rel for rel in manifest.files} | {manifest_key, prefix + LOCK_NAME}
            stray = sorted(key for key in listed if key not in wanted)
            result.unchanged = len(manifest.files) - len(upload)
            same_manifest = (
                old is not None and old.revision == manifest.revision and old.entry == manifest.entry
            )
            if not upload and not stray and same_manifest:
                return result
            with _Lease(s3, bucket, location):
                # The plan above was made without the lease: a publish that finished in between changed
                # the manifest, and uploading this plan would overwrite files that manifest names.
                if manifest_etag(s3, bucket, manifest_key) != old_etag:
                    raise DagopsError(
                        f"Another publish of code location {location!r} finished meanwhile; "
                        "run the publish again."
                    )
                _upload(s3, bucket, prefix, upload, paths, manifest, result)
                if not same_manifest:
                    condition = {"IfMatch": old_etag} if old_etag else {"IfNoneMatch": "*"}
                    try:
                        s3.put_object(
                            Bucket=bucket,
                            Key=manifest_key,
                            Body=manifest.stamped().to_json(),
                            ContentType="application/json",
                            CacheControl="no-cache",
                            **condition,
                        )
                    except ClientError as exc:
                        if error_code(exc) in _PRECONDITION_CODES:
                            raise DagopsError(
                                f"The manifest of code location {location!r} was changed by another publish "
                                "meanwhile; run the publish again."
                            ) from None
                        raise
                    result.manifest_written = True
                # Never delete what the live manifest names: the new one once written, else the old one.
                live = manifest if result.manifest_written or old is None else old
                stray = [key for key in stray if key.removeprefix(prefix) not in live.files]
                _delete_keys(s3, bucket, stray)
                result.deleted = len(stray)
        except (ClientError, BotoCoreError) as exc:
            raise _s3_problem(exc, bucket, doing) from None
        finally:
            result.requests = counter.count
            result.seconds = time.monotonic() - started
    return result


def read_exactly(path: Path, item: FileEntry) -> bytes:
    """The bytes of ``path`` when they are the ones scanned into the manifest (``item``), else raise.

    The final component is opened without following a link (a file swapped for a link after the scan
    is refused), and the content is checked against the manifest's sha256: what is uploaded is exactly
    what the manifest says, never bytes from elsewhere.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise DagopsError(f"Cannot read {path} to publish it: {exc.strerror or exc}.") from None
    with os.fdopen(fd, "rb") as fh:
        body = fh.read(item.size + 1)
    if len(body) != item.size or hashlib.sha256(body).hexdigest() != item.sha256:
        raise DagopsError(f"{path} changed while it was being published; publish again.")
    return body


def _upload(
    s3: Any,
    bucket: str,
    prefix: str,
    rels: list[str],
    paths: dict[str, Path],
    manifest: Manifest,
    result: PublishResult,
) -> None:
    def one(rel: str) -> int:
        item = manifest.files[rel]
        body = read_exactly(paths[rel], item)
        s3.put_object(Bucket=bucket, Key=prefix + rel, Body=body, Metadata={"sha256": item.sha256})
        return len(body)

    if not rels:
        return
    with ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, len(rels))) as pool:
        for size in pool.map(one, sorted(rels)):
            result.uploaded += 1
            result.bytes_uploaded += size


def unpublish_location(s3: Any, bucket: str, location: str) -> int:
    """Delete everything under ``dags/<location>/``, the manifest first (so agents stop trusting it).

    Returns the number of keys deleted (0 when nothing was published).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    validate_location_name(location)
    prefix = settings.location_prefix(location)
    try:
        listed = list_keys(s3, bucket, prefix)
        manifest_key = prefix + MANIFEST_NAME
        deleted = 0
        if manifest_key in listed:
            s3.delete_object(Bucket=bucket, Key=manifest_key)
            deleted += 1
        rest = sorted(key for key in listed if key != manifest_key)
        _delete_keys(s3, bucket, rest)
        return deleted + len(rest)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_problem(exc, bucket, f"removing code location {location!r}") from None


def s3_client() -> Any:
    """A boto3 S3 client; ``AWS_ENDPOINT_URL`` and the usual AWS variables are honoured by boto3 itself."""
    import boto3

    return boto3.client("s3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dagops.publish",
        description="Publish a code location's folder to s3://$DAGSTER_S3_BUCKET/dags/<location>/.",
    )
    parser.add_argument("--location", required=True, help="code location name")
    parser.add_argument("--source", required=True, help="folder holding the location's code")
    parser.add_argument("--entry", default="definitions.py", help="Definitions file, relative to --source")
    args = parser.parse_args(argv)
    try:
        bucket = settings.bucket()
        result = publish_location(s3_client(), bucket, args.location, Path(args.source), args.entry)
    except DagopsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[publish {stamp}] {result.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
