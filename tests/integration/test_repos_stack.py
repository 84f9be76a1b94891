"""`invoke repo.add` / `repo.remove` against the running local stack: the location appears in, then
leaves, the webserver's workspace (GraphQL), with real Postgres, a moto S3 server, sync agents and code
servers (the session fixtures of conftest.py).

The stack runs in a temporary project root (DAGOPS_ROOT), so the test never touches the checkout's
registry or repos/. The time from `invoke repo.add` starting to the location being LOADED is recorded
in the ``figures`` fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagops import registry, repos
from dagops.localstack import graphql
from dagops.localstack.config import DevConfig, free_port
from dagops.localstack.postgres import PostgresDatabase
from dagops.registry_watch import wait_for_location

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUCKET = "dagops-it-repos"

MAIN_DEFS = """\
import dagster as dg


@dg.asset
def hello() -> str:
    return "hello"


defs = dg.Definitions(assets=[hello])
"""

REPO_DEFS = """\
import dagster as dg


@dg.asset
def from_upstream() -> int:
    return 1


defs = dg.Definitions(assets=[from_upstream])
"""


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _invoke(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """A project root of its own: tasks.py/pyproject.toml stubs, a registry with a small `main`."""
    # Not under pytest's tmp dir: a local Postgres runs as its own user, who must be able to enter it.
    base = Path(tempfile.mkdtemp(prefix="dagops-repos-it-"))
    base.chmod(0o755)
    root = base / "project"
    (root / "code_locations" / "main").mkdir(parents=True)
    (root / "tasks.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'stub'\n")
    (root / "code_locations" / "main" / "definitions.py").write_text(MAIN_DEFS)
    registry.save([registry.Location(name="main", source="code_locations/main")], root)
    yield root
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def repo_stack(
    postgres: PostgresDatabase, moto_endpoint: str, project: Path
) -> Iterator[tuple[DevConfig, dict[str, str]]]:
    """`invoke dev --detach` in ``project``, on the session's Postgres and S3 server."""
    settings = {
        "MODE": "embedded",
        "UI_PORT": free_port(),
        "CODE_SERVER_BASE_PORT": free_port(),
        "S3_URL": moto_endpoint,
        "BUCKET": BUCKET,
        "POSTGRES_HOST": postgres.host,
        "POSTGRES_PORT": postgres.port,
        "POSTGRES_USER": postgres.user,
        "POSTGRES_PASSWORD": postgres.password,
        "POSTGRES_DB": postgres.db,
        "SYNC_INTERVAL": 1.0,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGOPS_DEV_")}
    env.update({f"DAGOPS_DEV_{k}": str(v) for k, v in settings.items()})
    env.update(
        DAGOPS_ROOT=str(project), DAGOPS_STATE_DIR=str(project / ".dagops"), GIT_CONFIG_GLOBAL=os.devnull
    )
    config = DevConfig.resolve({}, environ=env, state_dir=str(project / ".dagops"))
    started = _invoke(["dev", "--detach"], env, project, timeout=400)
    if started.returncode != 0:
        _invoke(["stop"], env, project, timeout=120)
        pytest.fail(f"`invoke dev --detach` failed: {started.stdout}{started.stderr}")
    try:
        yield config, env
    finally:
        stopped = _invoke(["stop"], env, project, timeout=180)
        assert stopped.returncode == 0, stopped.stderr


def test_repo_add_and_remove_show_in_the_running_stack(
    repo_stack: tuple[DevConfig, dict[str, str]], project: Path, tmp_path: Path, figures: dict[str, str]
) -> None:
    config, env = repo_stack
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    _git(upstream, "init", "--quiet", "--initial-branch", "main")
    (upstream / "definitions.py").write_text(REPO_DEFS)
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "--quiet", "-m", "first")
    wait_for_location(config.ui_url, "main", present=True, timeout=120)
    assert set(graphql.locations(config.ui_url)) == {"main"}

    started = time.monotonic()
    added = _invoke(["repo.add", "--url", upstream.as_uri(), "--name", "external"], env, project)
    command = time.monotonic() - started
    assert added.returncode == 0, added.stderr
    assert f"uploading to s3://{BUCKET}/dags/external/" in added.stdout  # the running stack's bucket
    visible = wait_for_location(config.ui_url, "external", present=True, timeout=120)
    figures["repo.add to location loaded in the UI"] = (
        f"{command + visible:.1f} s (command {command:.1f} s, then {visible:.1f} s)"
    )
    states = graphql.locations(config.ui_url)
    assert states["external"]["error"] is None and states["main"]["error"] is None
    assert ["from_upstream"] in _asset_keys(config.ui_url)

    listed = _invoke(["repo.list"], env, project)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("external "))
    assert row.split()[2:5] == ["main", registry.get("external", project).commit[:12], "ok"]

    started = time.monotonic()
    removed = _invoke(["repo.remove", "--name", "external"], env, project)
    assert removed.returncode == 0, removed.stderr
    gone = wait_for_location(config.ui_url, "external", present=False, timeout=60)
    figures["repo.remove to location gone from the UI"] = f"{time.monotonic() - started:.1f} s"
    assert gone >= 0 and set(graphql.locations(config.ui_url)) == {"main"}
    assert not (project / "repos" / "external").exists()
    assert [loc.name for loc in registry.load(project)] == ["main"]
    assert repos.list_repos(project) == []


def _asset_keys(url: str) -> list[list[str]]:
    data: dict[str, Any] = graphql.query(url, "{ assetNodes { assetKey { path } } }")
    return [node["assetKey"]["path"] for node in data["assetNodes"]]
