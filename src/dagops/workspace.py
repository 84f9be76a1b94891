"""Dagster workspace.yaml: every code location is a shared gRPC server (never a python_file workspace)."""

from __future__ import annotations

from collections.abc import Iterable

import yaml


def render(servers: Iterable[tuple[str, str, int]]) -> str:
    """workspace.yaml text for ``(location_name, host, port)`` gRPC code servers."""
    entries = [
        {"grpc_server": {"host": host, "port": int(port), "location_name": name}}
        for name, host, port in servers
    ]
    return yaml.safe_dump({"load_from": entries}, sort_keys=False)
