"""Dagster resources shared by the code locations.

``LocationS3`` is the only way a location's assets touch the bucket: every key is forced under
``assets/<location>/``, so a location can read and write its own prefix and nothing else (no ``..``, no
absolute keys, no other location's or the code's prefix). Configure it with ``dg.EnvVar`` so asset code
never reads the environment at import time; the endpoint comes from boto3's own ``AWS_ENDPOINT_URL``
(the local stack, moto) and is absent in AWS.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from dagops.errors import DagopsError
from dagops.names import validate_location_name

ASSETS_PREFIX = "assets"


def location_key(location: str, key: str) -> str:
    """The full S3 key of ``key`` in ``location``'s asset prefix; raise DagopsError for keys outside it.

    ``key`` is relative (``daily/numbers.json``) or already full (``assets/<location>/daily/numbers.json``).
    """
    validate_location_name(location)
    prefix = f"{ASSETS_PREFIX}/{location}/"
    if not isinstance(key, str) or not key.strip():
        raise DagopsError(f"An S3 key of location {location!r} must be a non-empty string.")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise DagopsError(f"S3 key {key!r} must be relative to assets/{location}/ (no leading '/', no '\\').")
    parts = key.split("/")
    if any(part in ("..", ".") for part in parts) or "" in parts[:-1]:
        raise DagopsError(f"S3 key {key!r} must not contain '.', '..' or empty path segments.")
    if key.startswith(prefix):
        relative = key[len(prefix) :]
    elif key.split("/", 1)[0] in (ASSETS_PREFIX, "dags", "logs"):
        raise DagopsError(
            f"S3 key {key!r} is outside location {location!r}'s prefix {prefix!r}; "
            "a location reads and writes only its own prefix."
        )
    else:
        relative = key
    if not relative or relative.endswith("/"):
        raise DagopsError(f"S3 key {key!r} does not name an object under {prefix!r}.")
    full = prefix + relative
    assert posixpath.normpath(full) == full.rstrip("/")
    return full


class LocationS3(dg.ConfigurableResource):
    """S3 access confined to ``assets/<location>/`` of the environment's bucket."""

    location: str = Field(description="code location whose prefix this resource may use")
    bucket: str = Field(description="the environment's bucket (DAGSTER_S3_BUCKET)")
    region_name: str | None = Field(default=None, description="AWS region; default from the environment")

    @property
    def prefix(self) -> str:
        return f"{ASSETS_PREFIX}/{validate_location_name(self.location)}/"

    def key(self, key: str) -> str:
        return location_key(self.location, key)

    def client(self) -> Any:
        import boto3

        # boto3 honours AWS_ENDPOINT_URL itself (local stack, moto); in AWS it is unset.
        return boto3.session.Session(region_name=self.region_name).client("s3")

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write ``data`` to ``key`` (relative to the prefix); return the full key."""
        full = self.key(key)
        self.client().put_object(Bucket=self.bucket, Key=full, Body=data, ContentType=content_type)
        return full

    def get_bytes(self, key: str) -> bytes:
        body = self.client().get_object(Bucket=self.bucket, Key=self.key(key))["Body"]
        return bytes(body.read())

    def put_json(self, key: str, value: Any) -> str:
        return self.put_bytes(key, json.dumps(value, sort_keys=True).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def delete(self, key: str) -> None:
        self.client().delete_object(Bucket=self.bucket, Key=self.key(key))

    def list_keys(self, under: str = "") -> Iterator[str]:
        """Keys below the prefix (optionally below ``under``), relative to the prefix."""
        prefix = self.prefix + (under.strip("/") + "/" if under.strip("/") else "")
        if under.strip("/"):
            self.key(under.strip("/"))  # validates ``under`` like any key
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]


def location_s3(location: str) -> LocationS3:
    """The usual ``LocationS3`` of a code location: bucket from ``DAGSTER_S3_BUCKET`` at run time."""
    return LocationS3(location=location, bucket=dg.EnvVar("DAGSTER_S3_BUCKET"))
