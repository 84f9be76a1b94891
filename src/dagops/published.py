"""What is already published for a code location in S3: its manifest (and ETag), its listed objects, and
whether an object holds exactly a local file's content. The read side of ``dagops.publish``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagops import settings
from dagops.errors import DagopsError
from dagops.manifest import MANIFEST_NAME, FileEntry, Manifest, read_bounded


def error_code(exc: Exception) -> str:
    """The error code of a boto3/botocore failure ("" when it carries none)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def read_manifest(s3: Any, bucket: str, location: str) -> tuple[Manifest | None, str | None]:
    """The published manifest of ``location`` and its ETag; (None, None) when there is none.

    A manifest that exists but cannot be parsed is returned as (None, etag): it is replaced, conditionally.
    """
    from botocore.exceptions import ClientError

    key = settings.location_prefix(location) + MANIFEST_NAME
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404"}:
            return None, None
        raise
    etag = response["ETag"]
    try:
        return Manifest.from_json(read_bounded(response), location), etag
    except DagopsError:
        return None, etag


def manifest_etag(s3: Any, bucket: str, key: str) -> str | None:
    """The manifest's current ETag, or None when there is none."""
    from botocore.exceptions import ClientError

    try:
        return str(s3.head_object(Bucket=bucket, Key=key)["ETag"])
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
            return None
        raise


@dataclass(frozen=True)
class Listed:
    """One listed object: its size and ETag (without quotes)."""

    size: int
    etag: str

    @property
    def multipart(self) -> bool:
        """A multipart upload's ETag is ``<md5 of the part md5s>-<parts>``, not the content's MD5."""
        return "-" in self.etag


def list_keys(s3: Any, bucket: str, prefix: str) -> dict[str, Listed]:
    """Every key under ``prefix`` with its size and ETag (one request per 1,000 keys)."""
    keys: dict[str, Listed] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys[item["Key"]] = Listed(item["Size"], str(item.get("ETag", "")).strip('"'))
    return keys


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def stored_sha256(s3: Any, bucket: str, key: str) -> str | None:
    """The sha256 a publish stored in the object's metadata (a HEAD request); None when absent."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
            return None
        raise
    return (head.get("Metadata") or {}).get("sha256")


def needs_upload(
    s3: Any, bucket: str, key: str, item: FileEntry, old: FileEntry | None, listed: Listed | None, path: Path
) -> bool:
    """Whether the object at ``key`` must be (re)written to hold exactly the local file's content.

    Content decides, never the size: a publish interrupted after overwriting a file of the same size
    leaves the old manifest in place, so a later publish of that old content must still upload it.
    A single-part object's ETag is the MD5 of its bytes (SSE-S3 buckets); a multipart one's is not,
    so its stored sha256 is read with one HEAD. Anything else that does not match is uploaded again.
    """
    if old != item or listed is None or listed.size != item.size:
        return True
    if listed.multipart:
        return stored_sha256(s3, bucket, key) != item.sha256
    return listed.etag != md5_file(path)
