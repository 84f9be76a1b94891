"""The local stack's questions to the Dagster webserver: /server_info and each location's load status.

GraphQL goes through the one client, dagops.webserver (``query``, ``reload_location`` and
``reload_workspace`` are re-exported here for the stack and the tests).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dagops.webserver import query, reload_location, reload_workspace

__all__ = ["locations", "query", "reload_location", "reload_workspace", "server_info"]

LOCATIONS_QUERY = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


def server_info(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    """The webserver's /server_info, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=timeout) as resp:  # noqa: S310 (loopback)
            return dict(json.loads(resp.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def locations(url: str) -> dict[str, dict[str, Any]]:
    """Each code location of the workspace: name -> {loadStatus, error (None when loaded)}."""
    data = query(url, LOCATIONS_QUERY)["workspaceOrError"]
    result: dict[str, dict[str, Any]] = {}
    for entry in data.get("locationEntries", []):
        loaded = entry.get("locationOrLoadError") or {}
        error = loaded.get("message") if loaded.get("__typename") == "PythonError" else None
        if entry.get("loadStatus") == "LOADED" and not loaded:
            error = error or "not loaded"
        result[entry["name"]] = {"loadStatus": entry.get("loadStatus"), "error": error}
    return result
