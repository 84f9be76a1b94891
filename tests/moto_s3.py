"""An S3 client for the tests' moto servers (fixtures: tests/unit/ and tests/integration/conftest.py)."""

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
