"""The downloads of one sync step: each changed file of a manifest fetched from S3 into the build folder.

A download never reads more than the size the manifest declares (``receive``) and is checked against
the manifest's sha256; an object that did not match (a publish under way, or a corrupt object) raises
:class:`Mismatch` and is remembered by its ETag, so the next attempt asks S3 for it only if it changed
(``IfNoneMatch``): the same bad bytes are never downloaded twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dagops.manifest import Manifest

DOWNLOAD_WORKERS = 8
_CHUNK = 1024 * 1024


class Mismatch(Exception):
    """A file of the manifest is missing in S3 or does not hold the manifest's bytes (transient)."""


def error_code(exc: ClientError) -> tuple[str, Any]:
    """The error code and HTTP status of a ClientError."""
    response = exc.response or {}
    return str(response.get("Error", {}).get("Code", "")), response.get("ResponseMetadata", {}).get(
        "HTTPStatusCode"
    )


def receive(response: dict[str, Any], target: Path, declared: int, sha256: str) -> tuple[int, bool]:
    """Stream an object's body into ``target``, never reading more than ``declared`` + 1 bytes.

    Returns (bytes read, whether size and sha256 match). A Content-Length other than the declared
    size is a mismatch before any byte is read.
    """
    body = response["Body"]
    try:
        length = response.get("ContentLength")
        if type(length) is int and length != declared:
            return 0, False
        digest = hashlib.sha256()
        size = 0
        with target.open("wb") as fh:
            while size <= declared:
                chunk = body.read(min(_CHUNK, declared + 1 - size))
                if not chunk:
                    break
                size += len(chunk)
                digest.update(chunk)
                if size <= declared:
                    fh.write(chunk)
        return size, size == declared and digest.hexdigest() == sha256
    finally:
        body.close()


class Downloads:
    """Fetches files of ``s3://<bucket>/<prefix>`` into build folders; remembers the objects that did not
    match (their ETag) until :meth:`forget`."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self._bad_objects: dict[str, str] = {}

    def forget(self) -> None:
        """Forget the objects that did not match (a new revision, or the build was dropped)."""
        self._bad_objects.clear()

    def fetch_all(self, build: Path, manifest: Manifest, rels: list[str]) -> Iterator[int]:
        """Download ``rels`` into ``build`` (in parallel); yields each file's size, raises Mismatch."""
        if not rels:
            return
        with ThreadPoolExecutor(max_workers=min(DOWNLOAD_WORKERS, len(rels))) as pool:
            yield from pool.map(lambda rel: self.fetch(build, manifest, rel), sorted(rels))

    def fetch(self, build: Path, manifest: Manifest, rel: str) -> int:
        """Download ``rel`` into ``build`` and check it against the manifest; its size."""
        item = manifest.files[rel]
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + rel}
        bad_etag = self._bad_objects.get(rel)
        if bad_etag:
            kwargs["IfNoneMatch"] = bad_etag  # the object that did not match: only if it changed
        mismatch = (
            f"{rel} in S3 does not match manifest revision {manifest.revision[:12]} "
            "(a publish under way, or a corrupt object); not swapping"
        )
        try:
            response = self.s3.get_object(**kwargs)
        except ClientError as exc:
            code, status = error_code(exc)
            if code == "304" or status == 304:
                raise Mismatch(f"{mismatch}; waiting for it to change (not downloaded again)") from None
            if code in {"NoSuchKey", "404"}:
                raise Mismatch(
                    f"{rel} of revision {manifest.revision[:12]} is missing in S3; will retry"
                ) from None
            raise
        size, ok = receive(response, build / rel, item.size, item.sha256)
        if not ok:
            (build / rel).unlink(missing_ok=True)
            if response.get("ETag"):
                self._bad_objects[rel] = response["ETag"]
            raise Mismatch(f"{mismatch}; will retry when it changes")
        self._bad_objects.pop(rel, None)
        return size
