"""What the tests ask a Dagster webserver over GraphQL: the asset keys it shows, a job launch, a run's end.

Shared by the local stack tests (tests/integration) and the compose stack test (tests/containers), with
``FRESH_MODULE``: a module that adds the asset ``fresh_asset`` to the main location when saved beside it.
"""

from __future__ import annotations

from typing import Any

from dagops import webserver

ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on Error { message }
  }
}
"""
RUN_STATUS = "query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")
FRESH_MODULE = """
import dagster as dg


@dg.asset(group_name="fresh")
def fresh_asset() -> int:
    return 1


defs = dg.Definitions(assets=[fresh_asset])
"""


def asset_keys(url: str) -> set[str]:
    """Every asset key the webserver at ``url`` shows, as "a/b" paths."""
    return {"/".join(n["assetKey"]["path"]) for n in webserver.query(url, ASSETS_QUERY)["assetNodes"]}


def served_asset_keys(url: str, location: str) -> set[str] | None:
    """The asset keys, or None while ``location`` is not loaded without error (or the webserver is down)."""
    try:
        state = webserver.locations(url).get(location)
        if not state or state["loadStatus"] != "LOADED" or state["error"]:
            return None
        return asset_keys(url)
    except Exception:
        return None


def launch_job(url: str, location: str, job: str) -> dict[str, Any]:
    """Launch ``job`` of ``location`` with no run config; the ``launchRun`` answer."""
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job},
        "runConfigData": {},
    }
    return dict(webserver.query(url, LAUNCH, {"params": params})["launchRun"])


def finished_status(url: str, run_id: str) -> str | None:
    """The run's status once it has ended (SUCCESS, FAILURE or CANCELED), else None."""
    status = webserver.query(url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
    return str(status) if status in TERMINAL else None
