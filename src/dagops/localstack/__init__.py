"""The local stack behind `invoke dev`: Postgres, S3, sync agents, code servers, webserver, daemon."""

from dagops.localstack.config import DevConfig
from dagops.localstack.postgres import LocalPostgres, find_bin_dir

__all__ = ["DevConfig", "LocalPostgres", "find_bin_dir"]
