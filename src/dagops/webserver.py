"""The one client of the Dagster webserver's GraphQL API, for the sync agent and the operator's tools.

dagster-graphql's ``DagsterGraphQLClient`` has ``reload_repository_location``, but it is not used here:
importing it imports dagster, gql and requests (about 70 MB more RSS and seconds of CPU in the sync agent,
which never imports dagster and is budgeted at 150 MB beside a 512 MiB code-location task); its errors
span several lines with the query text in them; and it has no workspace queries (the local stack reads
each location's load status and reloads the whole workspace). So this is plain HTTP: one POST per
operation, an optional number of attempts with ``dagops.backoff`` between them, and any failure as one
sentence (a DagopsError). ``server_info`` (a GET of /server_info, None while nothing answers) and
``locations`` (each location's load status) are the local stack's and the tests' questions.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from dagops.backoff import doubling
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
RELOAD_LOCATION = "mutation($n:String!){reloadRepositoryLocation(repositoryLocationName:$n){__typename}}"


def _post(url: str, text: str, variables: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    """One POST of a GraphQL operation; its ``data``, or a DagopsError of one sentence."""
    body = json.dumps({"query": text, "variables": variables or {}}).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's setting
        f"{url.rstrip('/')}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise DagopsError(f"The Dagster webserver at {url} answered HTTP {exc.code}.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DagopsError(f"The Dagster webserver at {url} does not answer ({exc}).") from None
    except ValueError:
        raise DagopsError(f"The Dagster webserver at {url} answered something that is not JSON.") from None
    if not isinstance(payload, dict):
        raise DagopsError(f"The Dagster webserver at {url} answered something that is not a GraphQL reply.")
    if payload.get("errors"):
        first = payload["errors"][0]
        message = first.get("message") if isinstance(first, dict) else first
        raise DagopsError(f"GraphQL error from {url}: {message}")
    return dict(payload.get("data") or {})


def query(
    url: str,
    text: str,
    variables: dict[str, Any] | None = None,
    timeout: float = 30.0,
    attempts: int = 1,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Run one GraphQL operation against ``<url>/graphql``; return its ``data``.

    ``attempts`` > 1 retries any failure with backoff (0.5 s doubling, at most 8 s; not once
    ``should_stop``): the webserver may still be starting. The last failure is raised as a DagopsError.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _post(url, text, variables, timeout)
        except DagopsError:
            if attempt >= attempts or should_stop():
                raise
        time.sleep(doubling(attempt, first=0.5, cap=8.0))
    raise DagopsError(f"No attempt to reach the Dagster webserver at {url} was made.")


def reload_location(
    url: str, location: str, attempts: int = 1, should_stop: Callable[[], bool] = lambda: False
) -> str:
    """Ask the webserver to reload code location ``location``; the result's ``__typename``."""
    data = query(url, RELOAD_LOCATION, {"n": location}, attempts=attempts, should_stop=should_stop)
    return str((data.get("reloadRepositoryLocation") or {}).get("__typename", "?"))


def reload_workspace(url: str, timeout: float = 30.0) -> str:
    """Make the webserver read workspace.yaml again and reconnect to every code location; the result's
    ``__typename``."""
    data = query(url, "mutation { reloadWorkspace { __typename } }", timeout=timeout)
    return str((data.get("reloadWorkspace") or {}).get("__typename", "?"))


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
