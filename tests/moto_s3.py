"""An S3 client for the tests' moto servers (fixtures: tests/unit/ and tests/integration/conftest.py), and
what a bucket holds."""

from __future__ import annotations

from typing import Any

import boto3


def make_client(endpoint: str, region: str = "us-east-1") -> Any:
    """An S3 client on ``endpoint``: fake credentials, short timeouts, no retries (failures show at once)."""
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1}),
    )


def bucket_objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Key -> bytes of every object in ``bucket`` under ``prefix``."""
    return {
        item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    }
