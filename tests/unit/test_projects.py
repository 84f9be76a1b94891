"""Real project layouts: how a repository's Dagster project is found (find_entry / --path), what its
entry loads as (dagops.runtime.sync.target), where its dependencies come from
(dagops.runtime.requirements), and repo.update's `git ls-remote` shortcut. Fast: nothing here imports
user code (the layouts load and serve through the real stack in tests/integration/test_repos_stack.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gitrepos
import pytest
from gitrepos import write_files

from dagops.errors import DagopsError
from dagops.operator import repos
from dagops.runtime import requirements
from dagops.runtime.sync import target
from dagops.runtime.sync.warmserver import _forget_tree, _moved

DG_PYPROJECT = """\
[project]
name = "proj"
version = "0.1"
dependencies = ["dagster"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "proj"
"""

# name, files, --path, expected entry (None: refused with the message in the last column)
FIND: list[tuple[str, dict[str, str], str | None, str | None, str]] = [
    (
        "tool-dagster-package-relative-imports",
        {
            "pyproject.toml": "[tool.dagster]\nmodule_name = 'pkg.definitions'\n",
            "pkg/__init__.py": "",
            "pkg/definitions.py": "",
            "pkg_tests/test_x.py": "",
        },
        None,
        "pkg/definitions.py",
        "",
    ),
    (
        "tool-dagster-modules-list",
        {"pyproject.toml": "[tool.dagster]\nmodules = [{type = 'module', name = 'a.b'}]\n", "a/b.py": ""},
        None,
        "a/b.py",
        "",
    ),
    (
        "dg-src-layout",
        {"pyproject.toml": DG_PYPROJECT, "src/proj/definitions.py": ""},
        None,
        "src/proj/definitions.py",
        "",
    ),
    (
        "dg-toml",
        {
            "dg.toml": "[project]\nroot_module = 'proj'\ncode_location_target_module = 'proj.defs_entry'\n",
            "src/proj/defs_entry.py": "",
        },
        None,
        "src/proj/defs_entry.py",
        "",
    ),
    (
        "dg-autoload-defs-refused",
        {"pyproject.toml": DG_PYPROJECT + "autoload_defs = true\n", "src/proj/defs/__init__.py": ""},
        None,
        None,
        "uses autoload_defs",
    ),
    (
        "dagster-cloud-yaml",
        {
            "dagster_cloud.yaml": "locations:\n  - location_name: x\n    code_source:\n"
            "      package_name: etl\n    build:\n      directory: ./etl_project\n",
            "etl_project/etl/__init__.py": "",
        },
        None,
        "etl_project/etl/__init__.py",
        "",
    ),
    (
        "pyproject-wins-over-dagster-cloud-yaml",
        {
            "pyproject.toml": DG_PYPROJECT,
            "dagster_cloud.yaml": "locations:\n  - location_name: proj\n"
            "    code_source:\n      package_name: proj\n",
            "src/proj/__init__.py": "",
            "src/proj/definitions.py": "",
        },
        None,
        "src/proj/definitions.py",
        "",
    ),
    (
        "workspace-yaml-python-file",
        {"workspace.yaml": "load_from:\n  - python_file: jobs/repo.py\n", "jobs/repo.py": ""},
        None,
        "jobs/repo.py",
        "",
    ),
    (
        "declared-module-missing",
        {"pyproject.toml": "[tool.dagster]\nmodule_name = 'gone.definitions'\n"},
        None,
        None,
        "names 'gone.definitions' for Dagster, but the repository has no such module",
    ),
    (
        "one-project-in-a-subfolder-is-found",
        {"README.md": "", "pipelines/pyproject.toml": DG_PYPROJECT, "pipelines/src/proj/definitions.py": ""},
        None,
        "pipelines/src/proj/definitions.py",
        "",
    ),
    (
        "several-projects-are-listed",
        {
            "a/pyproject.toml": "[tool.dagster]\nmodule_name = 'a_pkg.definitions'\n",
            "a/a_pkg/definitions.py": "",
            "b/setup.py": "",
            "b/b_pkg/definitions.py": "",
            "b/tests/definitions.py": "",
        },
        None,
        None,
        "several Dagster projects: a/ (a/a_pkg/definitions.py), b/ (b/b_pkg/definitions.py); "
        "choose one with --path FOLDER",
    ),
    (
        "path-picks-one",
        {
            "a/pyproject.toml": "[tool.dagster]\nmodule_name = 'a_pkg.definitions'\n",
            "a/a_pkg/definitions.py": "",
            "b/setup.py": "",
            "b/b_pkg/definitions.py": "",
        },
        "b",
        "b/b_pkg/definitions.py",
        "",
    ),
    ("path-missing", {"a/definitions.py": ""}, "nope", None, "has no folder 'nope'"),
    ("path-escapes", {"a/definitions.py": ""}, "../a", None, "Invalid --path"),
    (
        "several-packages-ask-for-entry",
        {"x/definitions.py": "", "y/definitions.py": ""},
        None,
        None,
        "--entry FILE",
    ),
]


@pytest.mark.parametrize(
    ("files", "path", "expected", "message"), [pytest.param(*r[1:], id=r[0]) for r in FIND]
)
def test_find_entry_in_real_layouts(
    tmp_path: Path, files: dict[str, str], path: str | None, expected: str | None, message: str
) -> None:
    write_files(tmp_path, files)
    if expected is None:
        with pytest.raises(DagopsError, match=message.replace("(", r"\(").replace(")", r"\)")):
            repos.find_entry(tmp_path, path=path)
    else:
        assert repos.find_entry(tmp_path, path=path) == expected


# entry, files, (project, import root, module or None for a file loaded by path)
TARGETS: list[tuple[str, dict[str, str], tuple[str, str, str | None]]] = [
    ("definitions.py", {}, ("", "", "definitions")),
    ("pkg/definitions.py", {"pyproject.toml": ""}, ("", "", "pkg.definitions")),
    ("src/proj/definitions.py", {"pyproject.toml": ""}, ("", "src", "proj.definitions")),
    ("src/proj/__init__.py", {"setup.cfg": ""}, ("", "src", "proj")),
    (
        "mono/p1/src/proj/definitions.py",
        {"mono/p1/pyproject.toml": "", "pyproject.toml": ""},
        ("mono/p1", "mono/p1/src", "proj.definitions"),
    ),
    ("mono/p2/etl/defs.py", {"mono/p2/setup.py": ""}, ("mono/p2", "mono/p2", "etl.defs")),
    ("my-scripts/definitions.py", {}, ("", "", None)),
]


@pytest.mark.parametrize(("entry", "files", "expected"), TARGETS, ids=[t[0] for t in TARGETS])
def test_load_target_rule(
    tmp_path: Path, entry: str, files: dict[str, str], expected: tuple[str, str, str | None]
) -> None:
    write_files(tmp_path, {**files, entry: ""})
    found = target.resolve(tmp_path, entry)
    assert (found.project, found.import_root, found.module) == expected
    args = found.dagster_args()
    assert args[-2:] == ["--working-directory", str(found.project_dir)]
    assert args[:2] == (
        ["--module-name", expected[2]] if expected[2] else ["--python-file", str(tmp_path / entry)]
    )
    env = target.with_paths(found, {"PYTHONPATH": "/site"})
    assert env["PYTHONPATH"].split(os.pathsep)[-1] == "/site"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(found.import_dir)


def test_warm_server_moves_paths_and_forgets_namespace_packages(tmp_path: Path) -> None:
    build, current = str(tmp_path / "build"), str(tmp_path / "current")
    assert _moved([f"{build}/src", "/site", build], build, current) == [f"{current}/src", "/site", current]
    write_files(tmp_path / "build", {"nspkg/mod.py": "X = 1\n"})  # nspkg: a namespace package, no __file__
    sys.path.insert(0, build)
    try:
        import nspkg.mod  # type: ignore[import-not-found]

        assert nspkg.mod.X == 1
    finally:
        _forget_tree(build)
    assert "nspkg" not in sys.modules and "nspkg.mod" not in sys.modules and build not in sys.path


# --------------------------------------------------------------------------- dependencies


def test_dependency_sources_of_a_project(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "p"\nversion = "1"\ndependencies = ["minidep"]\n'
    both = write_files(tmp_path / "both", {"pyproject.toml": pyproject, "requirements.txt": "extra==1.0\n"})
    assert [p.name for p in requirements.requirement_sources(both)] == ["pyproject.toml", "requirements.txt"]

    # A requirements.txt saved as UTF-16 (PowerShell's `>`) does not parse: the valid pyproject wins.
    utf16 = write_files(
        tmp_path / "utf16", {"pyproject.toml": pyproject, "requirements.txt": "minidep\n".encode("utf-16")}
    )
    warnings: list[str] = []
    assert [p.name for p in requirements.requirement_sources(utf16, warnings.append)] == ["pyproject.toml"]
    assert warnings == ["warning: requirements.txt ignored (it is not UTF-8 text); using pyproject.toml"]

    alone = write_files(tmp_path / "alone", {"requirements.txt": "pandas=2.0\n"})  # conda syntax
    with pytest.raises(DagopsError, match=r"line 1 \('pandas=2.0'\) is not a requirement; fix it"):
        requirements.requirement_sources(alone)

    setup = write_files(tmp_path / "setup", {"setup.py": "", "setup.cfg": ""})
    assert [p.name for p in requirements.requirement_sources(setup)] == ["setup.py"]
    dynamic = write_files(
        tmp_path / "dyn", {"pyproject.toml": '[project]\nname="d"\ndynamic=["dependencies"]\n'}
    )
    assert [p.name for p in requirements.requirement_sources(dynamic)] == ["pyproject.toml"]
    tools_only = write_files(tmp_path / "tools", {"pyproject.toml": "[tool.ruff]\nline-length = 100\n"})
    assert requirements.requirement_sources(tools_only) == []


@pytest.mark.parametrize(
    "line",
    [
        "dagster>=1.13",
        "x[extra]==1; python_version>'3'",
        "./wheels/a.whl",
        "-e ../shared",
        "git+https://h/x.git",
        "pkg @ https://h/p.whl",
        "pkg==1 --hash=sha256:00",
        "# comment",
        "",
    ],
)
def test_requirements_txt_lines_that_parse(tmp_path: Path, line: str) -> None:
    (tmp_path / "requirements.txt").write_text(line + "\n")
    assert requirements.requirements_txt_problem(tmp_path / "requirements.txt") is None


def test_only_dagsters_packages_are_shared_with_the_location() -> None:
    base = requirements.base_packages()
    shared = requirements.shared_packages(base)
    for name in ("dagster", "dagster-pipes", "grpcio", "protobuf", "dagster-postgres", "sqlalchemy"):
        assert shared[name] == base[name], name
    # Present in this environment for the project's own tools, not in any process with user code.
    for name in ("pathspec", "mypy", "ruff", "moto", "dagster-webserver"):
        if name in base:
            assert name not in shared, name


def test_installer_error_keeps_uvs_explanation() -> None:
    stderr = (
        "Using CPython 3.11.7\n"
        "error: No solution found when resolving dependencies:\n"
        "  cause: Because you require dagster==1.9.0 and dagster==1.13.27, we can conclude that your "
        "requirements are unsatisfiable.\n"
    )
    assert requirements._last_line(stderr) == (
        "error: No solution found when resolving dependencies cause: Because you require dagster==1.9.0 "
        "and dagster==1.13.27, we can conclude that your requirements are unsatisfiable."
    )
    pretty = (
        "  \u00d7 No solution found when resolving dependencies:\n  \u2570\u2500\u25b6 Because x==2 ...\n"
    )
    assert (
        requirements._last_line(pretty)
        == "\u00d7 No solution found when resolving dependencies Because x==2 ..."
    )


def test_a_project_pinning_another_dagster_is_refused_with_uvs_cause(tmp_path: Path) -> None:
    version = requirements.base_packages()["dagster"]
    other = "1.9.0" if version != "1.9.0" else "1.8.0"
    project = write_files(
        tmp_path / "tree",
        {
            "pyproject.toml": f'[project]\nname = "old"\nversion = "1"\n'
            f'dependencies = ["dagster=={other}"]\n',
            "old/definitions.py": "",
        },
    )
    with pytest.raises(DagopsError) as caught:
        requirements.ensure_requirements(project, tmp_path / "cache", entry="old/definitions.py")
    message = str(caught.value)
    assert message.startswith("Cannot install the requirements in pyproject.toml: ")
    assert f"dagster=={other}" in message and f"dagster=={version}" in message
    assert f"the code servers here run dagster {version}, so the project must allow that version" in message
    assert "\n" not in message
    assert not [p for p in (tmp_path / "cache").iterdir()]


@pytest.mark.parametrize(
    ("spec", "running", "refused"),
    [
        (">=3.14", "3.11.7", "requires Python '>=3.14' (requires-python in pyproject.toml), but the code "
         "servers here run Python 3.11.7."),
        (">=3.9,<3.12", "3.11.7", None),
        ("~=3.11", "3.11.7", None),
        (">=3.11.8", "3.11.7", "requires Python '>=3.11.8'"),
        ("<3.11", "3.11.7", "requires Python '<3.11'"),
        ("python3", "3.11.7", "requires-python 'python3' in pyproject.toml is not a version specifier"),
        ("", "3.11.7", None),
    ],
)  # fmt: skip
def test_a_project_for_another_python_is_refused_in_one_sentence(
    tmp_path: Path, spec: str, running: str, refused: str | None
) -> None:
    pyproject = f'[project]\nname = "p"\nversion = "1"\nrequires-python = "{spec}"\n'
    project = write_files(tmp_path, {"pyproject.toml": pyproject})
    problem = target.python_problem(project, running)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and refused in problem and "\n" not in problem


def test_a_project_for_a_newer_python_is_refused_before_anything_is_installed(tmp_path: Path) -> None:
    # Seen on a public repository: requires-python >=3.14 and annotations naming a class imported only
    # for type checkers. Its dependencies installed, then the import check failed with "NameError: name
    # 'SQLModel' is not defined", which says nothing of the cause.
    project = write_files(
        tmp_path / "tree",
        {
            "pyproject.toml": '[project]\nname = "new"\nversion = "1"\nrequires-python = ">=3.99"\n'
            'dependencies = ["minidep"]\n',
            "src/new/definitions.py": "",
        },
    )
    with pytest.raises(
        DagopsError, match=r"^The project requires Python '>=3\.99' .* run Python 3\.\d+\.\d+\.$"
    ):
        requirements.ensure_requirements(project, tmp_path / "cache", entry="src/new/definitions.py")
    assert not (tmp_path / "cache").exists()
    # No pyproject, or one without requires-python: nothing to say.
    assert target.python_problem(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\n")
    assert target.python_problem(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("not toml [")
    assert target.python_problem(tmp_path) is None  # the requirements step reports a bad pyproject


# --------------------------------------------------------------------------- repo.update without a clone


def test_remote_commit_reads_branches_and_annotated_tags(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return gitrepos.git(tmp_path, *args)

    git("init", "--quiet", "--initial-branch", "main")
    git("commit", "--quiet", "--allow-empty", "-m", "one")
    head = git("rev-parse", "HEAD")
    git("tag", "-a", "v1", "-m", "tag")
    url = tmp_path.as_uri()
    assert repos.remote_commit(url, "main") == head
    assert repos.remote_commit(url, "v1") == head  # the commit, not the tag object
    assert repos.remote_commit(url, None) == head
    assert repos.remote_commit(url, "nope") is None


# --------------------------------------------------------------------------- the local stack's workspace


def test_a_location_whose_server_never_answers_still_shows_after_the_timeout(tmp_path: Path) -> None:
    import yaml

    from dagops import registry
    from dagops.operator import registry_watch

    (tmp_path / "code_locations").mkdir()
    registry.save([registry.Location("main", "code_locations/main")], tmp_path)
    watcher = registry_watch.RegistryWatcher(
        root=tmp_path,
        host="127.0.0.1",
        servers=[("main", "127.0.0.1", 4000)],
        workspace_yaml=tmp_path / "workspace.yaml",
        ui_url="http://127.0.0.1:9",  # nothing listens: the reload fails, the workspace is still written
        start_agent=lambda name, host, port: None,
        stop_agent=lambda name: None,
        publish=lambda loc: None,
        say=lambda line: None,
        ready=lambda host, port: False,
        pending_timeout=0.0,
    )
    registry.save(
        [*registry.load(tmp_path), registry.Location("etl", "repos/etl", url="file:///x")], tmp_path
    )
    assert watcher.poll() is True  # shown (with its error) rather than hidden for ever
    served = yaml.safe_load((tmp_path / "workspace.yaml").read_text())["load_from"]
    assert [s["grpc_server"]["location_name"] for s in served] == ["main", "etl"]
