"""The repository manager against local git repositories (file:// URLs) and moto S3.

Every bad input of issue 5 is one row of BAD_ADD / BAD_UPDATE / BAD_REMOVE; each row asserts a one-line
DagopsError and that the registry file's bytes, the S3 listing (keys and ETags) and repos/ (every
file with its content hash) are exactly what they were, with no temp folder left in the root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from gitrepos import Upstream, git, wheel
from moto import mock_aws

from dagops import registry
from dagops.errors import DagopsError
from dagops.operator import repos
from dagops.runtime import requirements

BUCKET = "dagops-test"

GOOD_DEFS = """\
import dagster as dg

from helpers import VALUE


@dg.asset
def {asset}() -> int:
    return VALUE


defs = dg.Definitions(assets=[{asset}])
"""


# --------------------------------------------------------------------------- fixtures


def good_files(asset: str = "numbers", value: int = 1) -> dict[str, str | bytes]:
    return {
        "definitions.py": GOOD_DEFS.format(asset=asset),
        "helpers.py": f"VALUE = {value}\n",
        "README.md": "# a pipeline repository\n",
        "data/config.yaml": "a: 1\n",
        "data/more.yaml": "b: 2\n",
    }


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minimal project root: tasks.py, pyproject.toml, the registry with `main`, code_locations/main."""
    project = tmp_path / "project"
    (project / "code_locations" / "main").mkdir(parents=True)
    (project / "code_locations" / "shared").mkdir()  # an own folder that is not (yet) registered
    (project / "tasks.py").write_text("")
    # A valid one: uv reads the pyproject.toml files above a checkout (workspace discovery).
    (project / "pyproject.toml").write_text("[project]\nname = 'stub'\nversion = '0'\n")
    (project / "code_locations" / "main" / "definitions.py").write_text("")
    registry.save([registry.Location(name="main", source="code_locations/main")], project)
    monkeypatch.setenv("DAGOPS_ROOT", str(project))
    monkeypatch.setenv("DAGOPS_STATE_DIR", str(project / ".dagops"))
    monkeypatch.setenv("UV_OFFLINE", "1")  # requirements come from local wheels only
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    return project


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="ap-southeast-2")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"}
        )
        yield client


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    repo = Upstream(tmp_path / "upstream" / "pipelines")
    repo.commit(good_files(), "first")
    return repo


def snapshot(root: Path, s3: Any) -> dict[str, Any]:
    """Everything a failed command must leave as it was."""
    listing = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            listing[item["Key"]] = item["ETag"]
    repos_tree: dict[str, str] | None = None
    if (root / "repos").exists():
        repos_tree = {}
        for path in sorted((root / "repos").rglob("*")):
            rel = path.relative_to(root).as_posix()
            repos_tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return {
        "registry": registry.registry_path(root).read_bytes(),
        "s3": listing,
        "repos": repos_tree,
        "root": sorted(p.name for p in root.iterdir() if p.name != ".dagops"),
    }


def quiet(_: str) -> None:
    pass


def add(root: Path, s3: Any, name: str, url: str, **kwargs: Any) -> registry.Location:
    return repos.add(name, url, s3=s3, bucket=BUCKET, root=root, log=quiet, **kwargs)


def seed(root: Path, s3: Any, name: str, upstream: Upstream) -> None:
    """A registered, published clone of ``upstream``, made without repo.add's (slow) import check."""
    from dagops.publish import publish_location

    (root / "repos").mkdir(exist_ok=True)
    ref, commit = repos.clone(upstream.url, None, root / "repos" / name)
    publish_location(s3, BUCKET, name, root / "repos" / name)
    location = registry.Location(name, f"repos/{name}", url=upstream.url, ref=ref, commit=commit)
    registry.save([*registry.load(root), location], root)


def fail_puts_after(s3: Any, allowed: int, failures: int = 10**6) -> Callable[[], int]:
    """Make PutObject fail (a dropped connection) after ``allowed`` calls, ``failures`` times."""
    lock = threading.Lock()
    calls = [0]

    def handler(**_: Any) -> None:
        with lock:
            calls[0] += 1
            if allowed < calls[0] <= allowed + failures:
                raise EndpointConnectionError(endpoint_url="https://s3.example.invalid")

    s3.meta.events.register("before-call.s3.PutObject", handler)
    return lambda: calls[0]


def manifest(s3: Any, name: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=BUCKET, Key=f"dags/{name}/_manifest.json")["Body"].read()
    return dict(json.loads(body))


# --------------------------------------------------------------------------- the happy path


def test_add_list_update_remove(root: Path, s3: Any, upstream: Upstream) -> None:
    first = git(upstream.path, "rev-parse", "HEAD")

    location = add(root, s3, "pipelines", upstream.url)

    assert location == registry.get("pipelines", root)
    assert (location.source, location.entry, location.url) == (
        "repos/pipelines",
        "definitions.py",
        upstream.url,
    )
    assert (location.ref, location.commit) == ("main", first)
    assert (root / "repos" / "pipelines" / "helpers.py").read_text() == "VALUE = 1\n"
    published = manifest(s3, "pipelines")
    assert published["entry"] == "definitions.py"
    assert set(published["files"]) == set(good_files())  # no .git, nothing else
    assert [loc.name for loc in registry.load(root)] == ["main", "pipelines"]
    assert not [p for p in root.iterdir() if p.name.startswith(".repo-")]

    rows = repos.list_repos(root)
    assert [(r.name, r.url, r.ref, r.commit) for r in rows] == [
        ("pipelines", upstream.url, "main", first[:12])
    ]
    assert "pipelines" in repos.format_table(rows) and first[:12] in repos.format_table(rows)

    second = upstream.commit({"helpers.py": "VALUE = 2\n", "new.py": "X = 1\n"}, remove=("data/more.yaml",))
    updated = repos.update("pipelines", s3=s3, bucket=BUCKET, root=root, log=quiet)

    assert updated.commit == second != first
    assert registry.get("pipelines", root).commit == second
    assert (root / "repos" / "pipelines" / "helpers.py").read_text() == "VALUE = 2\n"
    assert not (root / "repos" / "pipelines" / "data" / "more.yaml").exists()
    after = manifest(s3, "pipelines")
    assert after["revision"] != published["revision"]
    assert "new.py" in after["files"] and "data/more.yaml" not in after["files"]
    body = s3.get_object(Bucket=BUCKET, Key="dags/pipelines/helpers.py")["Body"].read()
    assert body == b"VALUE = 2\n"

    messages: list[str] = []
    unchanged = repos.update("pipelines", s3=s3, bucket=BUCKET, root=root, log=messages.append)
    assert unchanged.commit == second and any("up to date" in m for m in messages)

    repos.remove("pipelines", s3=s3, bucket=BUCKET, root=root, log=quiet)

    assert [loc.name for loc in registry.load(root)] == ["main"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="dags/pipelines/").get("KeyCount") == 0
    assert not (root / "repos" / "pipelines").exists()
    assert repos.list_repos(root) == []
    assert not [p for p in root.iterdir() if p.name.startswith(".repo-")]


def two_projects() -> dict[str, str | bytes]:
    """A repository holding two Dagster projects, one per folder."""
    return {
        "README.md": "# two projects\n",
        "proj_a/pyproject.toml": '[tool.dagster]\nmodule_name = "definitions"\n',
        "proj_a/definitions.py": GOOD_DEFS.format(asset="a_numbers"),
        "proj_a/helpers.py": "VALUE = 1\n",
        "proj_b/pyproject.toml": '[tool.dagster]\nmodule_name = "definitions"\n',
        "proj_b/definitions.py": GOOD_DEFS.format(asset="b_numbers"),
        "proj_b/helpers.py": "VALUE = 2\n",
    }


def test_two_locations_of_one_repository_share_its_clone(
    root: Path, s3: Any, tmp_path: Path, upstream: Upstream
) -> None:
    mono = Upstream(tmp_path / "mono")
    first = mono.commit(two_projects(), "first")
    a = add(root, s3, "proj-a", mono.url, path="proj_a")

    before = snapshot(root, s3)
    with pytest.raises(DagopsError, match="has no folder 'proj_c'"):
        add(root, s3, "proj-c", mono.url, path="proj_c")
    assert snapshot(root, s3) == before

    messages: list[str] = []
    b = repos.add("proj-b", mono.url, s3=s3, bucket=BUCKET, root=root, log=messages.append, path="proj_b")

    assert a.source == b.source == "repos/proj-a"
    assert (a.entry, b.entry) == ("proj_a/definitions.py", "proj_b/definitions.py")
    assert (a.commit, b.commit, b.ref) == (first, first, "main")
    assert any("sharing the clone repos/proj-a" in m for m in messages)
    assert not any(m.startswith("cloned") for m in messages)  # no second clone
    assert [p.name for p in (root / "repos").iterdir()] == ["proj-a"]
    assert (manifest(s3, "proj-a")["entry"], manifest(s3, "proj-b")["entry"]) == (a.entry, b.entry)

    second = mono.commit({"proj_a/helpers.py": "VALUE = 3\n"})
    messages.clear()
    repos.update("proj-b", s3=s3, bucket=BUCKET, root=root, log=messages.append)
    assert registry.get("proj-a", root).commit == registry.get("proj-b", root).commit == second
    assert registry.get("proj-a", root).source == registry.get("proj-b", root).source == "repos/proj-a"
    for name in ("proj-a", "proj-b"):
        body = s3.get_object(Bucket=BUCKET, Key=f"dags/{name}/proj_a/helpers.py")["Body"].read()
        assert body == b"VALUE = 3\n"
    assert any("updated proj-b (with proj-a)" in m for m in messages)

    mono.commit({"proj_a/definitions.py": "raise RuntimeError('project a is broken')\n"})
    before = snapshot(root, s3)
    with pytest.raises(DagopsError, match="Not updating proj-b: proj-a shares its clone and would not load"):
        repos.update("proj-b", s3=s3, bucket=BUCKET, root=root, log=quiet)
    assert snapshot(root, s3) == before

    import shutil

    shutil.rmtree(root / "repos")  # a fresh checkout: one clone restored, both locations served by it
    assert repos.restore(root, log=quiet) == ["proj-a"]
    assert git(root / "repos" / "proj-a", "rev-parse", "HEAD") == second

    messages.clear()
    repos.remove("proj-a", s3=s3, bucket=BUCKET, root=root, log=messages.append)
    assert "kept repos/proj-a: proj-b still uses it" in messages
    assert [loc.name for loc in registry.load(root)] == ["main", "proj-b"]
    assert (root / "repos" / "proj-a" / "proj_b" / "definitions.py").is_file()
    assert manifest(s3, "proj-b")["entry"] == "proj_b/definitions.py"
    before = snapshot(root, s3)
    with pytest.raises(DagopsError, match="repos/proj-a holds the clone that proj-b uses"):
        add(root, s3, "proj-a", upstream.url)
    assert snapshot(root, s3) == before

    repos.remove("proj-b", s3=s3, bucket=BUCKET, root=root, log=quiet)
    assert not (root / "repos" / "proj-a").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".repo-")]


def test_restore_clones_missing_repositories_at_the_recorded_commit(
    root: Path, s3: Any, upstream: Upstream
) -> None:
    seed(root, s3, "pipelines", upstream)
    recorded = registry.get("pipelines", root).commit
    upstream.commit({"helpers.py": "VALUE = 99\n"}, "moved on")
    import shutil

    shutil.rmtree(root / "repos")

    assert repos.restore(root, log=quiet) == ["pipelines"]
    assert git(root / "repos" / "pipelines", "rev-parse", "HEAD") == recorded
    assert (root / "repos" / "pipelines" / "helpers.py").read_text() == "VALUE = 1\n"
    assert repos.restore(root, log=quiet) == []
    assert not [p for p in root.iterdir() if p.name.startswith(".repo-")]


def test_add_at_a_branch_and_package_entry(root: Path, s3: Any, tmp_path: Path) -> None:
    upstream = Upstream(tmp_path / "pkgrepo")
    files = {f"etl/{k}": v for k, v in good_files().items() if k.endswith(".py")}
    files["etl/definitions.py"] = str(files["etl/definitions.py"]).replace("from helpers", "from etl.helpers")
    files["etl/__init__.py"] = ""
    upstream.commit({"README.md": "main branch\n"}, "first")
    git(upstream.path, "checkout", "--quiet", "-b", "release")
    release = upstream.commit(files, "release")
    git(upstream.path, "checkout", "--quiet", "main")

    location = add(root, s3, "etl-release", upstream.url, ref="release")

    assert (location.ref, location.commit, location.entry) == ("release", release, "etl/definitions.py")
    assert manifest(s3, "etl-release")["entry"] == "etl/definitions.py"


def test_add_without_a_running_stack_only_registers(root: Path, upstream: Upstream) -> None:
    messages: list[str] = []
    location = repos.add("pipelines", upstream.url, s3=None, bucket=None, root=root, log=messages.append)
    assert registry.get("pipelines", root) == location
    assert any("no upload" in m for m in messages)
    repos.remove("pipelines", s3=None, bucket=None, root=root, log=quiet)
    assert [loc.name for loc in registry.load(root)] == ["main"]


def test_requirements_are_installed_and_used_by_the_load_check(root: Path, s3: Any, tmp_path: Path) -> None:
    upstream = Upstream(tmp_path / "withreqs")
    upstream.commit(
        {
            "wheels/minidep-1.0-py3-none-any.whl": wheel("minidep", "1.0", "VALUE = 41\n"),
            "requirements.txt": "./wheels/minidep-1.0-py3-none-any.whl\n",
            "definitions.py": GOOD_DEFS.format(asset="with_dep").replace("from helpers", "from minidep"),
        }
    )

    add(root, s3, "withreqs", upstream.url)

    installed = list((root / ".dagops" / "code" / ".requirements").glob("*/site/minidep/__init__.py"))
    assert len(installed) == 1 and installed[0].read_text() == "VALUE = 41\n"
    assert "requirements.txt" in manifest(s3, "withreqs")["files"]


# --------------------------------------------------------------------------- bad input: nothing changes


def _symlink_out(upstream: Upstream) -> None:
    (upstream.path / "secret").symlink_to("/etc/hostname")
    upstream.commit({}, "symlink")


def _stray_clone(root: Path) -> None:
    (root / "repos" / "pipelines").mkdir(parents=True)
    (root / "repos" / "pipelines" / "keep.txt").write_text("mine\n")


# id, name, url (None: the good upstream), extra add() kwargs, upstream change, root change, message
BAD_ADD: list[tuple[str, str, str | None, dict[str, Any], Any, Any, str]] = [
    ("name-uppercase", "Pipelines", None, {}, None, None, "Invalid code location name"),
    ("name-empty", "", None, {}, None, None, "Invalid code location name"),
    ("name-too-long", "a" * 40, None, {}, None, None, "Invalid code location name"),
    ("name-digit-first", "1pipelines", None, {}, None, None, "Invalid code location name"),
    ("name-traversal", "../etc", None, {}, None, None, "Invalid code location name"),
    ("name-slash", "a/b", None, {}, None, None, "Invalid code location name"),
    ("name-shell", "x;rm -rf ~", None, {}, None, None, "Invalid code location name"),
    ("name-subst", "$(touch pwned)", None, {}, None, None, "Invalid code location name"),
    ("name-duplicate", "main", None, {}, None, None, "already registered"),
    ("name-own-folder", "shared", None, {}, None, None, "code_locations/shared already exists"),
    (
        "name-stray-clone",
        "pipelines",
        None,
        {},
        None,
        _stray_clone,
        "repos/pipelines exists but is not registered",
    ),
    (
        "name-orphan-upload",
        "pipelines",
        None,
        {},
        None,
        "s3-orphan",
        "already holds files of an unregistered",
    ),
    ("url-http", "pipelines", "http://example.com/repo.git", {}, None, None, "not a git URL"),
    ("url-ftp", "pipelines", "ftp://example.com/repo.git", {}, None, None, "not a git URL"),
    ("url-plain-path", "pipelines", "/srv/repo.git", {}, None, None, "not a git URL"),
    ("url-ext-transport", "pipelines", "ext::sh", {}, None, None, "not a git URL"),
    ("url-empty", "pipelines", "", {}, None, None, "URL is empty"),
    ("url-leading-dash", "pipelines", "--upload-pack=touch", {}, None, None, "cannot start with '-'"),
    (
        "url-shell-semicolon",
        "pipelines",
        "file:///tmp/x;touch",
        {},
        None,
        None,
        "characters a git URL does not",
    ),
    ("url-shell-subst", "pipelines", "https://h/$(id)", {}, None, None, "characters a git URL does not"),
    ("url-whitespace", "pipelines", "https://h/a b", {}, None, None, "characters a git URL does not"),
    ("url-ssh-option-host", "pipelines", "ssh://-oProxyCommand=x/r", {}, None, None, "not a git URL"),
    ("url-credentials", "pipelines", "https://u:tok@example.com/r.git", {}, None, None, "password or token"),
    ("ref-leading-dash", "pipelines", None, {"ref": "--upload-pack=x"}, None, None, "Invalid git ref"),
    ("ref-traversal", "pipelines", None, {"ref": "../main"}, None, None, "Invalid git ref"),
    ("ref-shell", "pipelines", None, {"ref": "main;id"}, None, None, "Invalid git ref"),
    ("entry-traversal", "pipelines", None, {"entry": "../../etc/x.py"}, None, None, "Invalid entry"),
    ("entry-absolute", "pipelines", None, {"entry": "/etc/x.py"}, None, None, "Invalid entry"),
    ("entry-not-python", "pipelines", None, {"entry": "README.md"}, None, None, "Invalid entry"),
    ("entry-missing", "pipelines", None, {"entry": "nope.py"}, None, None, "has no file 'nope.py'"),
    ("clone-no-such-repo", "pipelines", "file:///nonexistent/repo.git", {}, None, None, "git clone of"),
    ("clone-no-such-ref", "pipelines", None, {"ref": "no-such-branch"}, None, None, "git clone of"),
    (
        "no-definitions",
        "pipelines",
        None,
        {},
        lambda u: u.commit({}, "x", remove=("definitions.py",)),
        None,
        "No Dagster Definitions found",
    ),
    (
        "several-definitions",
        "pipelines",
        None,
        {},
        lambda u: u.commit({"a/definitions.py": "", "b/definitions.py": ""}, "x", remove=("definitions.py",)),
        None,
        "several Definitions files",
    ),
    (
        "definitions-import-error",
        "pipelines",
        None,
        {},
        lambda u: u.commit({"helpers.py": "import no_such_module_anywhere\n"}),
        None,
        "do not load: ModuleNotFoundError",
    ),
    (
        "definitions-syntax-error",
        "pipelines",
        None,
        {},
        lambda u: u.commit({"definitions.py": "def broken(:\n"}),
        None,
        "do not load: SyntaxError",
    ),
    (
        "definitions-object-missing",
        "pipelines",
        None,
        {},
        lambda u: u.commit({"definitions.py": "x = 1\n"}),
        None,
        "do not load",
    ),
    (
        "definitions-raise-at-import",
        "pipelines",
        None,
        {},
        lambda u: u.commit({"definitions.py": "raise RuntimeError('boom')\n"}),
        None,
        "RuntimeError: boom",
    ),
    ("symlink-outside", "pipelines", None, {}, _symlink_out, None, "symlink to outside the repository"),
    (
        "requirements-uninstallable",
        "pipelines",
        None,
        {},
        lambda u: u.commit({"requirements.txt": "./wheels/missing-1.0-py3-none-any.whl\n"}),
        None,
        "Cannot install the requirements",
    ),
    ("upload-fails-half-way", "pipelines", None, {"_fail_puts_after": 3}, None, None, "S3 failed"),
]


@pytest.mark.parametrize(
    ("name", "url", "kwargs", "change_upstream", "change_root", "message"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_ADD],
)
def test_bad_add_changes_nothing(
    root: Path,
    s3: Any,
    upstream: Upstream,
    name: str,
    url: str | None,
    kwargs: dict[str, Any],
    change_upstream: Callable[[Upstream], Any] | None,
    change_root: Callable[[Path], Any] | None,
    message: str,
) -> None:
    # Something published already, so "S3 unchanged" means more than "still empty".
    seed(root, s3, "existing", upstream)
    if change_upstream:
        change_upstream(upstream)
    if change_root == "s3-orphan":
        s3.put_object(Bucket=BUCKET, Key="dags/pipelines/left-over.py", Body=b"x = 1\n")
    elif change_root:
        change_root(root)
    kwargs = dict(kwargs)
    puts = None
    if "_fail_puts_after" in kwargs:
        puts = fail_puts_after(s3, kwargs.pop("_fail_puts_after"))
    before = snapshot(root, s3)

    with pytest.raises(DagopsError) as raised:
        add(root, s3, name, upstream.url if url is None else url, **kwargs)

    assert message in str(raised.value)
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)
    if puts is not None:
        assert puts() > 3  # the failure really came half-way through the upload
        s3.meta.events.unregister("before-call.s3.PutObject")
    assert snapshot(root, s3) == before


def test_bad_add_table_covers_every_kind_of_bad_input_in_the_issue() -> None:
    kinds = {row[0].split("-")[0] for row in BAD_ADD}
    assert {"name", "url", "clone", "no", "definitions", "upload"} <= kinds
    assert len(BAD_ADD) == 41


def _break_upstream(upstream: Upstream) -> None:
    upstream.commit({"helpers.py": "raise ImportError('broken on purpose')\n"})


def _same_size_change(upstream: Upstream) -> None:
    # Same sizes as before: only a content comparison notices these changed.
    upstream.commit({"helpers.py": "VALUE = 7\n", "data/config.yaml": "a: 9\n"})


# id, name, upstream change, PutObject calls allowed (None: no fault), message
BAD_UPDATE: list[tuple[str, str, Any, int | None, str]] = [
    ("unknown-name", "nothing", None, None, "No code location named 'nothing'"),
    ("invalid-name", "../x", None, None, "Invalid code location name"),
    ("own-location", "main", None, None, "not an external repository"),
    ("new-commit-fails-import", "pipelines", _break_upstream, None, "do not load: ImportError"),
    ("upload-fails-half-way", "pipelines", _same_size_change, 2, "S3 failed"),
    ("branch-deleted-upstream", "pipelines", "delete-branch", None, "git clone of"),
]


@pytest.mark.parametrize(
    ("name", "change", "puts_allowed", "message"), [pytest.param(*row[1:], id=row[0]) for row in BAD_UPDATE]
)
def test_bad_update_changes_nothing(
    root: Path,
    s3: Any,
    upstream: Upstream,
    name: str,
    change: Any,
    puts_allowed: int | None,
    message: str,
) -> None:
    seed(root, s3, "pipelines", upstream)
    if change == "delete-branch":
        git(upstream.path, "checkout", "--quiet", "-b", "other")
        git(upstream.path, "branch", "--quiet", "-D", "main")
    elif change:
        change(upstream)
    if puts_allowed is not None:
        # One dropped request: the connection is back for the restore of the previous upload.
        fail_puts_after(s3, puts_allowed, failures=1)
    before = snapshot(root, s3)
    served = s3.get_object(Bucket=BUCKET, Key="dags/pipelines/helpers.py")["Body"].read()

    with pytest.raises(DagopsError) as raised:
        repos.update(name, s3=s3, bucket=BUCKET, root=root, log=quiet)

    assert message in str(raised.value) and "\n" not in str(raised.value)
    if puts_allowed is not None:
        s3.meta.events.unregister("before-call.s3.PutObject")
    assert snapshot(root, s3) == before
    assert s3.get_object(Bucket=BUCKET, Key="dags/pipelines/helpers.py")["Body"].read() == served


BAD_REMOVE: list[tuple[str, str, str]] = [
    ("unknown-name", "nothing", "No code location named 'nothing'"),
    ("invalid-name", "Bad Name", "Invalid code location name"),
    ("traversal", "../repos", "Invalid code location name"),
    ("own-location", "main", "not an external repository"),
]


@pytest.mark.parametrize(("name", "message"), [pytest.param(*row[1:], id=row[0]) for row in BAD_REMOVE])
def test_bad_remove_changes_nothing(root: Path, s3: Any, upstream: Upstream, name: str, message: str) -> None:
    seed(root, s3, "pipelines", upstream)
    before = snapshot(root, s3)

    with pytest.raises(DagopsError) as raised:
        repos.remove(name, s3=s3, bucket=BUCKET, root=root, log=quiet)

    assert message in str(raised.value)
    assert snapshot(root, s3) == before


def test_remove_interrupted_by_s3_keeps_the_registration_and_can_be_finished(
    root: Path, s3: Any, upstream: Upstream
) -> None:
    add(root, s3, "pipelines", upstream.url)

    def refuse(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://s3.example.invalid")

    s3.meta.events.register("before-call.s3.DeleteObjects", refuse)
    with pytest.raises(DagopsError, match="S3 failed"):
        repos.remove("pipelines", s3=s3, bucket=BUCKET, root=root, log=quiet)
    assert registry.get("pipelines", root).url == upstream.url
    assert (root / "repos" / "pipelines" / "definitions.py").is_file()

    s3.meta.events.unregister("before-call.s3.DeleteObjects", refuse)
    repos.remove("pipelines", s3=s3, bucket=BUCKET, root=root, log=quiet)
    assert [loc.name for loc in registry.load(root)] == ["main"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="dags/pipelines/").get("KeyCount") == 0
    assert not (root / "repos" / "pipelines").exists()


def test_no_shell_ever_sees_the_url(root: Path, s3: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for url in (f"file:///x;touch {marker}", f"--upload-pack=touch {marker}", f"ext::sh -c touch% {marker}"):
        with pytest.raises(DagopsError):
            add(root, s3, "pipelines", url)
    assert not marker.exists()


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/dagster-io/dagster.git",
        "https://git.example.com:8443/team/pipelines",
        "https://user@example.com/team/pipelines.git",
        "ssh://git@github.com/org/repo.git",
        "ssh://example.com:2222/srv/git/repo",
        "git@github.com:org/repo.git",
        "deploy@git.internal:pipelines/etl.git",
        "file:///srv/git/pipelines.git",
    ],
)
def test_accepted_urls(url: str) -> None:
    assert repos.validate_url(url) == url


LAYOUTS: list[tuple[str, dict[str, str], str | None]] = [
    ("root-definitions", {"definitions.py": "", "other/definitions.py": ""}, "definitions.py"),
    ("package", {"etl/definitions.py": "", "tests/definitions.py": ""}, "etl/definitions.py"),
    ("src-layout", {"src/etl/definitions.py": ""}, "src/etl/definitions.py"),
    (
        "tool-dagster-module",
        {
            "pyproject.toml": "[tool.dagster]\nmodule_name = 'etl.defs'\n",
            "etl/defs.py": "",
            "definitions.py": "",
        },
        "etl/defs.py",
    ),
    (
        "tool-dagster-package",
        {"pyproject.toml": "[tool.dagster]\nmodule_name = 'etl'\n", "src/etl/__init__.py": ""},
        "src/etl/__init__.py",
    ),
    (
        "tool-dg-root-module",
        {"pyproject.toml": "[tool.dg.project]\nroot_module = 'proj'\n", "src/proj/definitions.py": ""},
        "src/proj/definitions.py",
    ),
    ("hidden-ignored", {".venv/x/definitions.py": ""}, None),
    ("nothing", {"main.py": ""}, None),
]


@pytest.mark.parametrize(("files", "expected"), [pytest.param(*row[1:], id=row[0]) for row in LAYOUTS])
def test_find_entry_rule(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    if expected is None:
        with pytest.raises(DagopsError, match="No Dagster Definitions found"):
            repos.find_entry(tmp_path)
    else:
        assert repos.find_entry(tmp_path) == expected


def test_sync_status_reads_the_agents_status_file(tmp_path: Path) -> None:
    (tmp_path / "etl").mkdir()
    (tmp_path / "etl" / "status.json").write_text(
        json.dumps({"location": "etl", "state": "error", "revision": "ab" * 32, "last_error": "boom\nmore"})
    )
    assert repos.sync_status(tmp_path, "etl") == f"error {'ab' * 6} boom"
    assert repos.sync_status(tmp_path, "other") == "not synced"
    assert repos.sync_status(None, "etl") == "-"


def test_requirements_prune_keeps_only_what_the_environment_lacks(tmp_path: Path) -> None:
    base = requirements.base_packages()
    yaml_version = base["pyyaml"]
    site = tmp_path / "site"
    for name, version, module in (("PyYAML", yaml_version, "yaml"), ("minidep", "1.0", "minidep")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (site / module).mkdir()
        (site / module / "__init__.py").write_text("")
        (info / "RECORD").write_text(f"{module}/__init__.py,,\n{info.name}/RECORD,,\n")

    removed = requirements.prune_base_duplicates(site, base)

    assert removed == [f"PyYAML=={yaml_version}"]
    assert sorted(p.name for p in site.iterdir()) == ["minidep", "minidep-1.0.dist-info"]


def test_requirements_key_changes_with_the_file_and_the_environment(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("minidep\n")
    base = {"dagster": "1.13.27"}
    key = requirements.requirements_key(req, base)
    assert key == requirements.requirements_key(req, dict(base))
    assert key != requirements.requirements_key(req, {"dagster": "1.13.28"})
    req.write_text("minidep==1.0\n")
    assert key != requirements.requirements_key(req, base)
    assert requirements.ensure_requirements(tmp_path / "empty", tmp_path / "cache") is None


def test_location_env_is_the_sync_agents_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    tree = tmp_path / "tree"
    (tree / "wheels").mkdir(parents=True)
    (tree / "wheels" / "minidep-1.0-py3-none-any.whl").write_bytes(wheel("minidep", "1.0", "VALUE = 5\n"))
    (tree / "requirements.txt").write_text("./wheels/minidep-1.0-py3-none-any.whl\n")
    code_dir = tmp_path / "code"

    env = requirements.location_env(tree, code_dir, {"PATH": os.environ["PATH"], "PYTHONPATH": "/elsewhere"})

    site = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    assert site.parent.parent == code_dir / ".requirements" and env["PYTHONPATH"].endswith("/elsewhere")
    probe = subprocess.run(
        [sys.executable, "-c", "import minidep; print(minidep.VALUE)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "5"
    # Second call: a cache hit (same directory, nothing reinstalled).
    stamp = (site / "minidep" / "__init__.py").stat().st_mtime_ns
    again = requirements.location_env(tree, code_dir, {})
    assert again["PYTHONPATH"] == str(site) and (site / "minidep" / "__init__.py").stat().st_mtime_ns == stamp
    assert requirements.location_env(tmp_path / "none", code_dir, {"A": "1"}) == {"A": "1"}


# --------------------------------------------------------------------------- the invoke layer

REPO = Path(__file__).resolve().parents[2]

CLI_CASES = [
    ("add-bad-name", ["repo.add", "--url", "file:///x", "--name", "../etc"], "Invalid code location name"),
    ("add-shell-url", ["repo.add", "--url", "file:///x;id", "--name", "ok"], "Refusing repository URL"),
    ("add-missing-args", ["repo.add", "--name", "ok"], "Give both --url URL and --name NAME"),
    ("alias-add-repo", ["add-repo", "--repo-url", "ftp://h/x", "--repo-name", "ok"], "not a git URL"),
    ("remove-unknown", ["repo.remove", "--name", "nothing"], "No code location named 'nothing'"),
    ("alias-update-repo", ["update-repo", "--name", "main"], "not an external repository"),
    ("logs-bad-name", ["repo.logs", "--name", "A;B"], "Invalid code location name"),
    ("make-style-add", ["add-repo", "REPO_URL=ftp://h/x", "REPO_NAME=ok"], "not a git URL"),
    (
        "make-style-add-swapped",
        ["add-repo", "REPO_NAME=Bad", "REPO_URL=file:///x"],
        "Invalid code location name",
    ),
    ("make-style-remove", ["remove-repo", "REPO_NAME=nothing"], "No code location named 'nothing'"),
    ("positional-remove", ["repo.remove", "nothing"], "No code location named 'nothing'"),
]


@pytest.mark.parametrize(("argv", "message"), [pytest.param(*row[1:], id=row[0]) for row in CLI_CASES])
def test_cli_bad_input_is_one_line_and_exit_1(root: Path, argv: list[str], message: str) -> None:
    before = registry.registry_path(root).read_bytes()
    env = {**os.environ, "DAGOPS_DEV_STATE_DIR": str(root / ".dagops")}
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *argv],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert registry.registry_path(root).read_bytes() == before
    assert not (root / "repos").exists()


def test_cli_make_style_add_and_remove(root: Path, upstream: Upstream) -> None:
    env = {**os.environ, "DAGOPS_DEV_STATE_DIR": str(root / ".dagops")}
    cli = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    added = subprocess.run(
        [*cli, "add-repo", f"REPO_URL={upstream.url}", "REPO_NAME=pipelines"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert registry.get("pipelines", root).url == upstream.url
    assert "no upload: the local stack is not running" in added.stdout
    removed = subprocess.run(
        [*cli, "remove-repo", "REPO_NAME=pipelines"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert removed.returncode == 0, removed.stderr
    assert [loc.name for loc in registry.load(root)] == ["main"] and not (
        root / "repos" / "pipelines"
    ).exists()


def test_cli_list_shows_the_repositories(root: Path, s3: Any, upstream: Upstream) -> None:
    add(root, s3, "pipelines", upstream.url)
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "list-repos"],
        cwd=root,
        env={**os.environ, "DAGOPS_DEV_STATE_DIR": str(root / ".dagops")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.strip().splitlines()
    assert header.split() == ["NAME", "URL", "REF", "COMMIT", "SYNC"]
    assert row.split()[:4] == ["pipelines", upstream.url, "main", registry.get("pipelines", root).commit[:12]]


def test_local_logs_and_cloudwatch_logs(tmp_path: Path, s3: Any) -> None:
    from dagops.operator.aws import Deployment

    log = tmp_path / "sync-etl.log"
    log.write_text("one\ntwo\n")
    out = io.StringIO()
    repos.local_logs(tmp_path, "etl", follow=False, out=out)
    assert [line.split("| ", 1)[1] for line in out.getvalue().splitlines()] == ["one", "two"]
    with pytest.raises(DagopsError, match="No log file"):
        repos.local_logs(tmp_path, "none", follow=False, out=out)

    logs = boto3.client("logs", region_name="ap-southeast-2")
    logs.create_log_group(logGroupName="/dagops/test/code-etl")
    logs.create_log_stream(logGroupName="/dagops/test/code-etl", logStreamName="sync/abc")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="/dagops/test/code-etl",
        logStreamName="sync/abc",
        logEvents=[{"timestamp": now, "message": "swapped to abc"}, {"timestamp": now + 1, "message": "ok"}],
    )
    groups = {"code-etl": "/dagops/test/code-etl", "code-gone": "/dagops/test/nothing"}
    dep = Deployment(env="test", outputs={"region": "ap-southeast-2", "log_group_names": groups})
    lines: list[str] = []
    assert repos.env_logs(dep, "etl", since_minutes=1, follow=False, echo=lines.append) == 2
    assert [line.split(" ", 1)[1] for line in lines] == ["code-etl swapped to abc", "code-etl ok"]
    with pytest.raises(DagopsError, match="does not exist"):
        repos.env_logs(dep, "gone", since_minutes=1, follow=False, echo=lines.append)


def test_requirements_without_an_installer_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "requirements.txt").write_text("minidep\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pip" else real_find_spec(name, *a)
    )
    with pytest.raises(DagopsError, match="neither uv nor pip"):
        requirements.ensure_requirements(tree, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


# --------------------------------------------------------------------------- the registry watcher


def test_registry_watcher_follows_the_registry(root: Path, tmp_path: Path) -> None:
    import http.server

    import yaml

    from dagops.operator import registry_watch

    reloads: list[bytes] = []

    class GraphQL(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            reloads.append(self.rfile.read(int(self.headers["Content-Length"])))
            body = b'{"data": {"reloadWorkspace": {"__typename": "Workspace"}}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), GraphQL)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events: list[str] = []
    answering: set[int] = {4000}  # ports whose code server answers
    workspace_yaml = tmp_path / "workspace.yaml"
    try:
        watcher = registry_watch.RegistryWatcher(
            root=root,
            host="127.0.0.1",
            servers=[("main", "127.0.0.1", 4000)],
            workspace_yaml=workspace_yaml,
            ui_url=f"http://127.0.0.1:{server.server_address[1]}",
            start_agent=lambda name, host, port: events.append(f"start {name}"),
            stop_agent=lambda name: events.append(f"stop {name}"),
            publish=lambda loc: events.append(f"publish {loc.name}"),
            say=quiet,
            ready=lambda host, port: port in answering,
        )
        assert watcher.poll() is False  # nothing changed yet

        extra = registry.Location("etl", "repos/etl", url="file:///x", ref="main", commit="a" * 40)
        registry.save([*registry.load(root), extra], root)
        # Its agent starts at once, but the workspace gets it only once its code server answers:
        # the webserver never shows a just-added location as unreachable.
        assert watcher.poll() is False
        assert events == ["publish etl", "start etl"] and not workspace_yaml.exists() and reloads == []
        answering.add(watcher.ports["etl"])
        assert watcher.poll() is True
        served = yaml.safe_load(workspace_yaml.read_text())["load_from"]
        assert [s["grpc_server"]["location_name"] for s in served] == ["main", "etl"]
        port = served[1]["grpc_server"]["port"]
        assert port != 4000 and b"reloadWorkspace" in reloads[-1]

        registry.save([dataclasses.replace(extra, commit="b" * 40), *registry.load(root)[:1]], root)
        assert watcher.poll() is False  # same names: a commit change is the sync agent's business

        registry.save(registry.load(root)[:1], root)  # main removed, etl kept
        assert watcher.poll() is True
        assert events[-1] == "stop main"
        served = yaml.safe_load(workspace_yaml.read_text())["load_from"]
        assert [(s["grpc_server"]["location_name"], s["grpc_server"]["port"]) for s in served] == [
            ("etl", port)
        ]
        assert len(reloads) == 2
    finally:
        server.shutdown()
