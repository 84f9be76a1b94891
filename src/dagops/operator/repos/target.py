"""Where repo.add/update/remove upload: the running local stack's S3, an environment's bucket, or nowhere."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """Where repo.add/update/remove upload: a bucket of an environment, the local stack's, or nowhere."""

    s3: Any
    bucket: str | None
    where: str
    code_dir: Path | None = None
    logs_dir: Path | None = None


def local_target(dev_settings: dict[str, Any] | None = None) -> Target:
    """The running local stack's S3 endpoint and bucket; with no stack running, no upload at all.

    The local S3 endpoint keeps objects in memory only: a stack that starts later publishes every
    registered location itself, so there is nothing to upload to while it is down.
    """
    from dagops.operator.devstack import s3 as local_s3
    from dagops.operator.devstack.config import DevConfig
    from dagops.operator.devstack.state import read_state, running_pid

    config = DevConfig.resolve(dev_settings or {})
    if running_pid(config) is None:
        return Target(None, None, "local stack (not running)", None, config.logs_dir)
    state = read_state(config)
    endpoint = state.get("s3_endpoint") or config.s3_endpoint
    bucket = state.get("bucket") or config.bucket
    return Target(
        local_s3.client(endpoint), bucket, f"local stack ({endpoint})", config.code_dir, config.logs_dir
    )


def env_target(env: str, root: Path | None = None) -> Target:
    """The bucket of a deployed environment, from its tofu outputs."""
    import boto3

    from dagops.operator import outputs

    values = outputs.load(env, root)
    bucket = outputs.require(values, "bucket_name", env)
    region = values.get("region") or None
    return Target(boto3.client("s3", region_name=region), str(bucket), f"environment {env}")
