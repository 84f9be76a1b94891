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
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitrepos import git, make_repo, wheel
from invoking import run_invoke

from dagops import registry, webserver
from dagops.operator import repos
from dagops.operator.devstack.config import DevConfig
from dagops.operator.devstack.postgres import PostgresDatabase
from dagops.operator.registry_watch import wait_for_location

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


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """A project root of its own: tasks.py/pyproject.toml stubs, a registry with a small `main`."""
    # Not under pytest's tmp dir: a local Postgres runs as its own user, who must be able to enter it.
    base = Path(tempfile.mkdtemp(prefix="dagops-repos-it-"))
    base.chmod(0o755)
    root = base / "project"
    (root / "code_locations" / "main").mkdir(parents=True)
    (root / "tasks.py").write_text("")
    # A valid one: uv reads the pyproject.toml files above a checkout (workspace discovery).
    (root / "pyproject.toml").write_text("[project]\nname = 'stub'\nversion = '0'\n")
    (root / "code_locations" / "main" / "definitions.py").write_text(MAIN_DEFS)
    registry.save([registry.Location(name="main", source="code_locations/main")], root)
    yield root
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def repo_stack(
    postgres: PostgresDatabase, moto_endpoint: str, project: Path, stack_starter: Any
) -> Iterator[tuple[DevConfig, dict[str, str]]]:
    """`invoke dev --detach` in ``project`` (the conftest's ``start_stack``), with its own bucket."""
    extra = {
        "DAGOPS_ROOT": str(project),
        "DAGOPS_DEV_BUCKET": BUCKET,
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    with stack_starter(postgres, moto_endpoint, project / ".dagops", extra) as stack:
        yield stack.config, stack.env


def test_repo_add_and_remove_show_in_the_running_stack(
    repo_stack: tuple[DevConfig, dict[str, str]], project: Path, tmp_path: Path, figures: dict[str, str]
) -> None:
    config, env = repo_stack
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "--quiet", "--initial-branch", "main")
    (upstream / "definitions.py").write_text(REPO_DEFS)
    git(upstream, "add", "-A")
    git(upstream, "commit", "--quiet", "-m", "first")
    wait_for_location(config.ui_url, "main", present=True, timeout=120)
    assert set(webserver.locations(config.ui_url)) == {"main"}

    started = time.monotonic()
    added = run_invoke("repo.add", "--url", upstream.as_uri(), "--name", "external", env=env, cwd=project)
    command = time.monotonic() - started
    assert added.returncode == 0, added.stderr
    assert f"uploading to s3://{BUCKET}/dags/external/" in added.stdout  # the running stack's bucket
    visible = wait_for_location(config.ui_url, "external", present=True, timeout=120)
    figures["repo.add to location loaded in the UI"] = (
        f"{command + visible:.1f} s (command {command:.1f} s, then {visible:.1f} s)"
    )
    states = webserver.locations(config.ui_url)
    assert states["external"]["error"] is None and states["main"]["error"] is None
    assert ["from_upstream"] in _asset_keys(config.ui_url)

    listed = run_invoke("repo.list", env=env, cwd=project)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("external "))
    assert row.split()[2:5] == ["main", registry.get("external", project).commit[:12], "ok"]

    started = time.monotonic()
    removed = run_invoke("repo.remove", "--name", "external", env=env, cwd=project)
    assert removed.returncode == 0, removed.stderr
    gone = wait_for_location(config.ui_url, "external", present=False, timeout=60)
    figures["repo.remove to location gone from the UI"] = f"{time.monotonic() - started:.1f} s"
    assert gone >= 0 and set(webserver.locations(config.ui_url)) == {"main"}
    assert not (project / "repos" / "external").exists()
    assert [loc.name for loc in registry.load(project)] == ["main"]
    assert repos.list_repos(project) == []


def _asset_keys(url: str) -> list[list[str]]:
    data: dict[str, Any] = webserver.query(url, "{ assetNodes { assetKey { path } } }")
    return [node["assetKey"]["path"] for node in data["assetNodes"]]


# --------------------------------------------------------------------------- real project layouts
#
# Each layout is a git repository built here (file:// URL) and added with `invoke repo.add` to the
# running stack; it must reach LOADED with its assets, and never show as failed on the way (the
# workspace gets a location only once its code server answers). Local packages are wheels built in
# memory (no index needed for them).


def _add_until_loaded(
    config: DevConfig, env: dict[str, str], project: Path, name: str, url: str, *extra: str
) -> tuple[float, float]:
    """`invoke repo.add`, then wait for LOADED, watching that the location never shows an error on the
    way; (seconds of the command, seconds from its end to LOADED)."""
    started = time.monotonic()
    added = run_invoke("repo.add", "--url", url, "--name", name, *extra, env=env, cwd=project)
    command = time.monotonic() - started
    assert added.returncode == 0, added.stdout + added.stderr
    seen: list[Any] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = webserver.locations(config.ui_url).get(name)
        if state is not None:
            seen.append(state)
            if state["loadStatus"] == "LOADED" and not state["error"]:
                break
        time.sleep(0.1)
    else:
        pytest.fail(f"{name} did not load in 180 s: {seen[-1:]}")
    failed = [s for s in seen if s["error"]]
    assert failed == [], f"{name} showed as failed while its code server started: {failed[0]}"
    return command, time.monotonic() - started - command


def _figure(figures: dict[str, str], layout: str, times: tuple[float, float]) -> None:
    command, loaded = times
    figures[f"repo.add to LOADED, {layout}"] = (
        f"{command + loaded:.1f} s (command {command:.1f} s, then {loaded:.1f} s)"
    )


PKG_PYPROJECT = """\
[project]
name = "pkgrel"
version = "0.1.0"

[tool.dagster]
module_name = "pkgrel.definitions"
code_location_name = "pkgrel"
"""

DG_PYPROJECT = """\
[project]
name = "dgproj"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["dagster"]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "dgproj"
registry_modules = ["dgproj.components.*"]
"""

ASSET = """\
import dagster as dg


@dg.asset
def {name}() -> int:
    return 1
"""

ALPHA_DEFS = """\
import dagster as dg
from minidep import VALUE


@dg.asset
def alpha_asset() -> int:
    return VALUE


defs = dg.Definitions(assets=[alpha_asset])
"""

BETA_PYPROJECT = """\
[project]
name = "beta"
version = "0.1"
dependencies = ["minitool"]

[tool.dagster]
module_name = "beta.definitions"
"""

# Fails to load unless the console script its dependency installs is on PATH (and works).
BETA_DEFS = """\
import shutil
import subprocess

import dagster as dg

tool = shutil.which("minitool")
if tool is None:
    raise RuntimeError("minitool is not on PATH")
said = subprocess.run([tool], capture_output=True, text=True, check=True).stdout.strip()


@dg.asset(name=f"tool_says_{said}")
def tool_asset() -> None:
    pass


defs = dg.Definitions(assets=[tool_asset])
"""

DG_DEFINITIONS = """\
from pathlib import Path

from dagster import definitions, load_from_defs_folder


@definitions
def defs():
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def test_package_with_relative_imports_and_a_dg_src_project(
    repo_stack: tuple[DevConfig, dict[str, str]], project: Path, tmp_path: Path, figures: dict[str, str]
) -> None:
    config, env = repo_stack
    package = make_repo(
        tmp_path / "pkgrel",
        {
            "pyproject.toml": PKG_PYPROJECT,
            "pkgrel/__init__.py": "",
            "pkgrel/assets.py": ASSET.format(name="rel_asset"),
            "pkgrel/definitions.py": "import dagster as dg\n\nfrom . import assets\n\n"
            "defs = dg.Definitions(assets=dg.load_assets_from_modules([assets]))\n",
            "pkgrel_tests/test_assets.py": "",
        },
    )
    _figure(figures, "package + relative imports", _add_until_loaded(config, env, project, "pkgrel", package))
    assert ["rel_asset"] in _asset_keys(config.ui_url)
    assert registry.get("pkgrel", project).entry == "pkgrel/definitions.py"

    dg_project = make_repo(
        tmp_path / "dgproj",
        {
            "pyproject.toml": DG_PYPROJECT,
            "src/dgproj/__init__.py": "",
            "src/dgproj/definitions.py": DG_DEFINITIONS,
            "src/dgproj/defs/__init__.py": "",
            "src/dgproj/defs/ingest.py": ASSET.format(name="from_defs_folder"),
            "tests/__init__.py": "",
        },
    )
    _figure(
        figures,
        "src/ + dg + lazy @definitions",
        _add_until_loaded(config, env, project, "dgproj", dg_project),
    )
    assert ["from_defs_folder"] in _asset_keys(config.ui_url)


def test_monorepo_projects_setup_py_dependencies_and_a_console_script(
    repo_stack: tuple[DevConfig, dict[str, str]], project: Path, tmp_path: Path, figures: dict[str, str]
) -> None:
    config, env = repo_stack
    minidep = wheel("minidep", "1.0", "VALUE = 41\n")
    minitool = wheel("minitool", "1.0", "def main():\n    print(42)\n", {"minitool": "minitool:main"})
    # The local packages are wheels kept in the repository (files outside it are refused): setup.py and
    # pyproject name them by name, a requirements.txt beside each says where the wheel is.
    url = make_repo(
        tmp_path / "mono",
        {
            "README.md": "# several projects\n",
            "pyproject.toml": "[tool.ruff]\nline-length = 100\n",  # the monorepo's own tooling only
            # A setup.py project whose install_requires names a local package.
            "projects/alpha/setup.py": "from setuptools import find_packages, setup\n\n"
            "setup(name='alpha', version='0.1', packages=find_packages(), install_requires=['minidep'])\n",
            "projects/alpha/requirements.txt": "./wheels/minidep-1.0-py3-none-any.whl\n",
            "projects/alpha/wheels/minidep-1.0-py3-none-any.whl": minidep,
            "projects/alpha/alpha/__init__.py": "",
            "projects/alpha/alpha/definitions.py": ALPHA_DEFS,
            # A project with its own pyproject whose dependency installs a console script.
            "projects/beta/pyproject.toml": BETA_PYPROJECT,
            "projects/beta/requirements.txt": "./wheels/minitool-1.0-py3-none-any.whl\n",
            "projects/beta/wheels/minitool-1.0-py3-none-any.whl": minitool,
            "projects/beta/beta/__init__.py": "",
            "projects/beta/beta/definitions.py": BETA_DEFS,
        },
    )

    refused = run_invoke("repo.add", "--url", url, "--name", "mono", env=env, cwd=project)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "several Dagster projects: projects/alpha/" in lines[0]
    assert "projects/beta/ (projects/beta/beta/definitions.py); choose one with --path FOLDER" in lines[0]

    times = _add_until_loaded(config, env, project, "alpha", url, "--path", "projects/alpha")
    _figure(figures, "monorepo subfolder, setup.py dependencies", times)
    times = _add_until_loaded(config, env, project, "beta", url, "--path", "projects/beta")
    _figure(figures, "monorepo subfolder, console script", times)
    keys = _asset_keys(config.ui_url)
    assert ["alpha_asset"] in keys and ["tool_says_42"] in keys
    assert registry.get("beta", project).url == registry.get("alpha", project).url == url
    # The second project of the repository shares the first one's clone (one registry entry each).
    assert registry.get("beta", project).source == registry.get("alpha", project).source == "repos/alpha"
    assert not (project / "repos" / "beta").exists()

    # repo.update of either moves both: each checked at the new commit, uploaded, served.
    (tmp_path / "mono" / "projects" / "beta" / "beta" / "definitions.py").write_text(
        BETA_DEFS.replace('name=f"tool_says_{said}"', 'name=f"tool_now_says_{said}"')
    )
    git(tmp_path / "mono", "commit", "--quiet", "-am", "beta: another asset")
    updated = run_invoke("repo.update", "--name", "alpha", env=env, cwd=project)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "updated alpha (with beta)" in updated.stdout
    commit = git(tmp_path / "mono", "rev-parse", "HEAD")
    assert registry.get("alpha", project).commit == registry.get("beta", project).commit == commit
    keys = _asset_keys(config.ui_url)
    assert ["tool_now_says_42"] in keys and ["alpha_asset"] in keys


def test_another_dagster_version_is_refused_in_one_sentence(
    repo_stack: tuple[DevConfig, dict[str, str]], project: Path, tmp_path: Path
) -> None:
    _config, env = repo_stack
    before = registry.registry_path(project).read_bytes()
    url = make_repo(
        tmp_path / "olddagster",
        {
            "pyproject.toml": "[project]\nname = 'old'\nversion = '0.1'\ndependencies = ['dagster==1.9.0']\n",
            "old/__init__.py": "",
            "old/definitions.py": "import dagster as dg\n\ndefs = dg.Definitions()\n",
        },
    )
    refused = run_invoke("repo.add", "--url", url, "--name", "olddagster", env=env, cwd=project)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "Cannot install the requirements in pyproject.toml" in lines[0]
    assert "dagster==1.9.0" in lines[0] and "so the project must allow that version" in lines[0]
    assert registry.registry_path(project).read_bytes() == before


def test_a_name_added_again_never_serves_the_removed_code(
    repo_stack: tuple[DevConfig, dict[str, str]], project: Path, tmp_path: Path
) -> None:
    config, env = repo_stack
    first = make_repo(tmp_path / "first", {"definitions.py": REPO_DEFS.replace("from_upstream", "old_code")})
    _add_until_loaded(config, env, project, "again", first)
    removed = run_invoke("repo.remove", "--name", "again", env=env, cwd=project)
    assert removed.returncode == 0, removed.stderr
    wait_for_location(config.ui_url, "again", present=False, timeout=60)
    copy = config.code_dir / "again"
    deadline = time.monotonic() + 30
    while copy.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not copy.exists(), "the stack kept the removed location's synced copy"

    second = make_repo(
        tmp_path / "second", {"definitions.py": REPO_DEFS.replace("from_upstream", "new_code")}
    )
    started = run_invoke("repo.add", "--url", second, "--name", "again", env=env, cwd=project)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        keys = _asset_keys(config.ui_url)
        assert ["old_code"] not in keys, "the removed repository's code was served again"
        state = webserver.locations(config.ui_url).get("again")
        if state and state["loadStatus"] == "LOADED" and not state["error"]:
            break
        time.sleep(0.1)
    assert ["new_code"] in _asset_keys(config.ui_url)

    unchanged = run_invoke("repo.update", "--name", "again", env=env, cwd=project)
    assert unchanged.returncode == 0 and "is up to date" in unchanged.stdout
    assert "cloned" not in unchanged.stdout  # answered from git ls-remote
