"""Settings read from the environment, failing fast with one clear line when a required one is missing."""

from __future__ import annotations

import os

from dagops.errors import ConfigError

BUCKET_VAR = "DAGSTER_S3_BUCKET"
DAGS_PREFIX = "dags"


def require(name: str, purpose: str = "") -> str:
    """Return the non-empty value of environment variable ``name`` or raise ConfigError."""
    value = os.environ.get(name, "").strip()
    if not value:
        why = f" ({purpose})" if purpose else ""
        raise ConfigError(f"{name} is not set{why}; set it and start again.")
    return value


def bucket() -> str:
    """The S3 bucket that holds dags/<location>/, compute logs and assets."""
    return require(BUCKET_VAR, "the S3 bucket that holds the DAG code")


def location_prefix(location: str) -> str:
    """The S3 key prefix of one code location's code: ``dags/<location>/``."""
    return f"{DAGS_PREFIX}/{location}/"
