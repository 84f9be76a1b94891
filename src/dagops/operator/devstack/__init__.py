"""The local stack behind `invoke dev`: Postgres, S3, sync agents, code servers, webserver, daemon."""

from dagops.operator.devstack.config import DevConfig
from dagops.operator.devstack.postgres import LocalPostgres, find_bin_dir

__all__ = ["DevConfig", "LocalPostgres", "find_bin_dir"]
