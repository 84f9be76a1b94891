"""repo.add / repo.remove against the running local stack: the location appears in, then leaves, the
webserver's workspace (GraphQL), with real Postgres (when installed), moto S3, sync agents, code servers.

The stack is started the way `invoke dev --detach` starts it, in a temporary project root with free
ports; the time from repo.add's return to the location being LOADED is printed (pytest -s shows it).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagops import registry, repos
from dagops.localstack import graphql
from dagops.localstack.config import DevConfig, free_port
from dagops.localstack.stack import start_detached, stop
from dagops.registry_watch import wait_for_location

pytestmark = pytest.mark.integration

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
def from_{tag}() -> int:
    return 1


defs = dg.Definitions(assets=[from_{tag}])
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


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Not under pytest's tmp_path: Postgres runs as its own user, who must be able to enter the state dir.
    base = Path(tempfile.mkdtemp(prefix="dagops-repos-it-"))
    base.chmod(0o755)
    root = base / "project"
    (root / "code_locations" / "main").mkdir(parents=True)
    (root / "tasks.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'stub'\n")
    (root / "code_locations" / "main" / "definitions.py").write_text(MAIN_DEFS)
    registry.save([registry.Location(name="main", source="code_locations/main")], root)
    monkeypatch.setenv("DAGOPS_ROOT", str(root))
    monkeypatch.setenv("DAGOPS_STATE_DIR", str(root / ".dagops"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for var in [v for v in os.environ if v.startswith("DAGOPS_DEV_")]:
        monkeypatch.delenv(var)
    yield root
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stack(project: Path) -> Iterator[DevConfig]:
    config = DevConfig.resolve(
        {},
        environ={},
        ui_port=free_port(),
        s3_port=free_port(),
        postgres_port=free_port(),
        code_server_base_port=free_port(),
        state_dir=str(project / ".dagops"),
        sync_interval=1.0,
    )
    console = io.StringIO()
    try:
        start_detached(config, console=console)
        yield config
    finally:
        stop(config, console=io.StringIO())


def test_repo_add_and_remove_show_in_the_running_stack(
    stack: DevConfig, project: Path, tmp_path: Path
) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    _git(upstream, "init", "--quiet", "--initial-branch", "main")
    (upstream / "definitions.py").write_text(REPO_DEFS.format(tag="upstream"))
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "--quiet", "-m", "first")
    assert set(graphql.locations(stack.ui_url)) == {"main"}

    target = repos.local_target(stack.to_dict())
    assert target.s3 is not None and target.bucket == stack.bucket
    started = time.monotonic()
    repos.add("external", upstream.as_uri(), s3=target.s3, bucket=target.bucket, root=project, log=print)
    added = time.monotonic()
    visible = wait_for_location(stack.ui_url, "external", present=True, timeout=120)
    print(
        f"\nrepo.add took {added - started:.1f} s; the location was LOADED in the UI "
        f"{visible:.1f} s later ({added - started + visible:.1f} s from the command's start)"
    )
    states = graphql.locations(stack.ui_url)
    assert states["external"]["error"] is None and states["main"]["error"] is None
    assets = _asset_keys(stack.ui_url)
    assert ["from_upstream"] in assets and ["hello"] in assets

    rows = {row.name: row for row in repos.list_repos(project, code_dir=target.code_dir)}
    assert rows["external"].sync.startswith("ok")

    started = time.monotonic()
    repos.remove("external", s3=target.s3, bucket=target.bucket, root=project, log=print)
    gone = wait_for_location(stack.ui_url, "external", present=False, timeout=60)
    print(
        f"repo.remove: the location left the UI {time.monotonic() - started:.1f} s after the command started"
    )
    assert set(graphql.locations(stack.ui_url)) == {"main"}
    assert gone >= 0


def _asset_keys(url: str) -> list[list[str]]:
    data: dict[str, Any] = graphql.query(url, "{ assetNodes { assetKey { path } } }")
    return [node["assetKey"]["path"] for node in data["assetNodes"]]
