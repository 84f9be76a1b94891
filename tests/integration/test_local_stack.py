"""The real local stack end to end: S3 upload -> sync agent -> code server -> webserver, runs in Postgres.

One stack per module (see conftest.py). Every test publishes the whole tree it wants, as `invoke dags.deploy`
would, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from dagsterui import FRESH_MODULE, RUN_STATUS, finished_status, launch_job, served_asset_keys
from polling import wait_for

from dagops import webserver
from dagops.publish import publish_location

pytestmark = pytest.mark.integration

LOCATION = "main"
REPO = Path(__file__).resolve().parents[2]
DAEMONS = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


def copy_main(dest: Path) -> Path:
    src = dest / "main"
    shutil.copytree(
        REPO / "code_locations" / LOCATION,
        src,
        ignore=shutil.ignore_patterns("__pycache__", "tests", "conftest.py"),
    )
    return src


def publish(stack: Any, source: Path) -> str:
    return publish_location(stack.s3(), stack.config.bucket, LOCATION, source).revision


def served_assets(stack: Any) -> set[str] | None:
    """Asset keys the webserver shows, or None while the location is not loaded without error."""
    return served_asset_keys(stack.url, LOCATION)


def serving(stack: Any, revision: str) -> bool:
    status = stack.status()
    return status.get("state") == "ok" and status.get("revision") == revision


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_stack_serves_the_published_location_from_postgres(stack: Any, figures: dict[str, str]) -> None:
    state = json.loads((stack.config.run_dir / "stack.json").read_text())
    assert state["status"] == "ready"
    assert state["storage"] == "postgres"
    manifest = json.loads(
        stack.s3()
        .get_object(Bucket=stack.config.bucket, Key=f"dags/{LOCATION}/_manifest.json")["Body"]
        .read()
    )
    wait_for(lambda: serving(stack, manifest["revision"]), 60, "the agent to serve the published revision")
    assets = wait_for(lambda: served_assets(stack), 60, "the location to load")
    assert {"raw_numbers", "number_summary"} <= assets
    # The webserver and daemon store in Postgres: the schema is there.
    with stack.postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.runs') IS NOT NULL")
        assert cur.fetchone()[0]

    # The daemon runs against the same storage: every required daemon reports healthy heartbeats.
    def daemons_healthy() -> bool:
        statuses = webserver.query(stack.url, DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = [s for s in statuses if s["required"]]
        return bool(required) and all(s["healthy"] for s in required)

    wait_for(daemons_healthy, 90, "the daemon's heartbeats")

    components = state["components"]
    code_servers = [
        p for p in _children(components["sync-main"]) if b"grpc" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert len(code_servers) == 1, "the sync agent runs exactly one code server"
    rss = {
        "webserver": _rss_kb(components["webserver"]),
        "daemon": _rss_kb(components["daemon"]),
        "code server": _rss_kb(code_servers[0]),
        "sync agent": _rss_kb(components["sync-main"]),
    }
    dagster_mb = (rss["webserver"] + rss["daemon"] + rss["code server"]) / 1024
    figures["invoke dev --detach -> UI answering, main loaded"] = f"{stack.ready_seconds:.1f} s"
    figures["RSS webserver + daemon + code server"] = (
        f"{dagster_mb:.0f} MB (webserver {rss['webserver'] / 1024:.0f}, daemon {rss['daemon'] / 1024:.0f}, "
        f"code server {rss['code server'] / 1024:.0f})"
    )
    figures["RSS with the sync agent"] = f"{dagster_mb + rss['sync agent'] / 1024:.0f} MB"
    assert dagster_mb < 1024


def test_new_asset_uploaded_to_s3_becomes_visible(
    stack: Any, tmp_path: Path, figures: dict[str, str]
) -> None:
    source = copy_main(tmp_path)
    (source / "pipelines" / "fresh.py").write_text(FRESH_MODULE)
    assert "fresh_asset" not in (wait_for(lambda: served_assets(stack), 60, "the location to load"))
    revision = publish(stack, source)
    uploaded = time.monotonic()
    wait_for(lambda: "fresh_asset" in (served_assets(stack) or set()), 90, "fresh_asset in the webserver")
    figures[f"S3 upload -> new asset in GraphQL (poll interval {stack.config.sync_interval:.0f} s)"] = (
        f"{time.monotonic() - uploaded:.1f} s"
    )
    assert serving(stack, revision)
    assert (stack.config.code_dir / LOCATION / "current" / "pipelines" / "fresh.py").is_file()


def test_deleted_file_disappears(stack: Any, tmp_path: Path) -> None:
    source = copy_main(tmp_path)
    (source / "pipelines" / "fresh.py").write_text(FRESH_MODULE)
    publish(stack, source)
    wait_for(lambda: "fresh_asset" in (served_assets(stack) or set()), 90, "fresh_asset in the webserver")

    (source / "pipelines" / "fresh.py").unlink()
    revision = publish(stack, source)
    keys = [
        o["Key"]
        for o in stack.s3().list_objects_v2(Bucket=stack.config.bucket, Prefix="dags/main/")["Contents"]
    ]
    assert "dags/main/pipelines/fresh.py" not in keys
    assets = wait_for(
        lambda: (a := served_assets(stack)) is not None and "fresh_asset" not in a and a,
        90,
        "fresh_asset to go",
    )
    assert {"raw_numbers", "number_summary"} <= assets
    assert serving(stack, revision)
    assert not (stack.config.code_dir / LOCATION / "current" / "pipelines" / "fresh.py").exists()


def test_job_launched_through_graphql_succeeds_and_is_stored_in_postgres(stack: Any, tmp_path: Path) -> None:
    revision = publish(stack, copy_main(tmp_path))
    wait_for(lambda: serving(stack, revision) and served_assets(stack), 90, "the location to serve main")
    launched = launch_job(stack.url, LOCATION, "numbers_job")
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert wait_for(lambda: finished_status(stack.url, run_id), 180, f"run {run_id} to finish") == "SUCCESS"
    with stack.postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, pipeline_name FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS", "numbers_job")
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        )
        assert cur.fetchone()[0] == 2
    body = (
        stack.s3()
        .get_object(Bucket=stack.config.bucket, Key="assets/main/numbers/summary.json")["Body"]
        .read()
    )
    assert json.loads(body) == {"count": 10, "mean": 5.5, "sum": 55}


def test_broken_upload_keeps_the_last_good_code_serving(stack: Any, tmp_path: Path) -> None:
    good = copy_main(tmp_path / "good")
    good_revision = publish(stack, good)
    before = wait_for(lambda: serving(stack, good_revision) and served_assets(stack), 90, "the good revision")

    broken = copy_main(tmp_path / "broken")
    (broken / "pipelines" / "fresh.py").write_text(FRESH_MODULE)  # would change the asset set if served
    numbers = broken / "pipelines" / "numbers.py"
    numbers.write_text(numbers.read_text() + "\ndef broken(:\n")
    bad_revision = publish(stack, broken)

    status = wait_for(
        lambda: (s := stack.status()).get("state") == "error" and s.get("bad_revision") == bad_revision and s,
        90,
        "the agent to reject the broken revision",
    )
    assert status["revision"] == good_revision
    assert "numbers.py" in (status.get("last_error") or "")
    # Several polls later the good code still serves, unchanged.
    time.sleep(stack.config.sync_interval * 4)
    assert served_assets(stack) == before
    assert stack.status()["revision"] == good_revision
    assert (
        "def broken("
        not in (stack.config.code_dir / LOCATION / "current" / "pipelines" / "numbers.py").read_text()
    )

    # Fixing the upload brings the agent back to ok.
    fixed_revision = publish(stack, good)
    assert fixed_revision == good_revision
    wait_for(lambda: serving(stack, good_revision), 60, "the agent to recover")


SLOW_MODULE = """
import time

import dagster as dg


@dg.op
def wait_a_while() -> None:
    time.sleep(30)


@dg.job
def slow_job():
    wait_a_while()


defs = dg.Definitions(jobs=[slow_job])
"""


JOBS_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"


def _has_job(stack: Any, job: str) -> bool:
    try:
        nodes = webserver.query(stack.url, JOBS_QUERY)["repositoriesOrError"]["nodes"]
    except Exception:
        return False
    return any(j["name"] == job for n in nodes for j in n["jobs"])


def _launch(stack: Any, job: str) -> str:
    launched = launch_job(stack.url, LOCATION, job)
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return str(launched["run"]["runId"])


def _run_status(stack: Any, run_id: str) -> str:
    return str(webserver.query(stack.url, RUN_STATUS, {"id": run_id})["runOrError"]["status"])


def test_a_code_swap_is_not_held_up_by_a_run_and_the_run_finishes(stack: Any, tmp_path: Path) -> None:
    # Locally a run is a child process of the code server that launched it. A swap replaces that server
    # while the run goes on: the new code serves (and takes new runs) at once, and the run still succeeds.
    source = copy_main(tmp_path)
    (source / "pipelines" / "slow.py").write_text(SLOW_MODULE)
    revision = publish(stack, source)
    wait_for(
        lambda: serving(stack, revision) and _has_job(stack, "slow_job"), 90, "the location with slow_job"
    )
    slow = _launch(stack, "slow_job")
    wait_for(lambda: _run_status(stack, slow) == "STARTED", 60, "slow_job to start")

    (source / "pipelines" / "fresh.py").write_text(FRESH_MODULE)
    newer = publish(stack, source)
    wait_for(
        lambda: serving(stack, newer) and "fresh_asset" in (served_asset_keys(stack.url, LOCATION) or ()),
        60,
        "the new code",
    )
    assert _run_status(stack, slow) == "STARTED"  # the swap did not wait for the run
    quick = _launch(stack, "numbers_job")  # the new server takes runs
    assert wait_for(lambda: finished_status(stack.url, quick), 120, "numbers_job to end") == "SUCCESS"
    assert wait_for(lambda: finished_status(stack.url, slow), 120, "slow_job to end") == "SUCCESS"
