"""A tiny client for the Dagster webserver's HTTP API (GraphQL and /server_info)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dagops.errors import DagopsError

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


def query(
    url: str, text: str, variables: dict[str, Any] | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Run one GraphQL operation; return its ``data`` or raise DagopsError with the server's errors."""
    body = json.dumps({"query": text, "variables": variables or {}}).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback URL)
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (loopback)
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise DagopsError(f"The Dagster webserver at {url} answered HTTP {exc.code}.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DagopsError(f"The Dagster webserver at {url} does not answer ({exc}).") from None
    if payload.get("errors"):
        raise DagopsError(f"GraphQL error from {url}: {payload['errors'][0].get('message')}")
    return dict(payload["data"])


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


RELOAD_MUTATION = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}
"""


def reload_location(url: str, name: str) -> str:
    """Ask the webserver to reload code location ``name``; the result's type name."""
    return str(query(url, RELOAD_MUTATION, {"name": name})["reloadRepositoryLocation"]["__typename"])


def reload_workspace(url: str) -> None:
    """Make the webserver read workspace.yaml again and reconnect to every code location."""
    query(url, "mutation { reloadWorkspace { __typename } }")
