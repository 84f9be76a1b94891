"""image.build / image.push: the docker commands they run, ECR login on stdin, and no-engine errors.

A stand-in ``docker`` on PATH records each call (argv and stdin); whether a real engine builds the
image is for a machine with Docker (see the Dockerfile's own check, hadolint, in `nox -s security`).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aws_stack import Stack
from invoke import Context
from invoke.exceptions import Exit

from dagops.operator.aws import image as images
from dagops.operator.tasks import image as image_tasks

FAKE_DOCKER = """#!{python}
import json, os, sys
calls = os.environ["FAKE_DOCKER_LOG"]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(calls, "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
if sys.argv[1:3] == ["version", "--format"] and os.environ.get("FAKE_DOCKER_ENGINE") != "up":
    print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.", file=sys.stderr)
    sys.exit(1)
if sys.argv[1:3] == ["context", "show"]:
    print("desktop-linux")
    sys.exit(0)
print("27.0.0" if sys.argv[1] == "version" else "ok")
"""


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "docker-calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    for name in images.BASE_IMAGE_ARGS:
        monkeypatch.delenv(f"DAGOPS_{name}", raising=False)
    return log


def _calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _git_repo(root: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout

    git("init", "-q")
    git("-c", "user.email=t@example.org", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "init")
    return git("rev-parse", "--short=12", "HEAD").strip()


def test_without_a_docker_engine_build_is_one_clear_error(docker: Path, stack: Stack) -> None:
    with pytest.raises(Exit, match="No Docker engine is answering") as exc:
        image_tasks.build(Context(), tag="v1")
    assert exc.value.code == 1
    with pytest.raises(Exit, match="No Docker engine is answering"):
        image_tasks.push(Context(), env="prod", tag="v1")
    assert not any("build" in call["argv"] or "login" in call["argv"] for call in _calls(docker))


def test_without_docker_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Exit, match="docker is not installed"):
        image_tasks.build(Context(), tag="v1")


def test_build_tags_with_the_git_sha(docker: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "up")
    sha = _git_repo(stack.root)
    image_tasks.build(Context(), platform="linux/amd64")
    build = next(c["argv"] for c in _calls(docker) if c["argv"][:2] == ["buildx", "build"])
    assert build == [
        "buildx",
        "build",
        "--builder",
        "desktop-linux",
        "--file",
        str(stack.root / "images" / "Dockerfile"),
        "--platform",
        "linux/amd64",
        "--tag",
        f"dagops:{sha}",
        "--load",
        str(stack.root),
    ]
    (stack.root / "code_locations" / "main" / "definitions.py").write_text("# changed\n")
    assert images.git_tag(stack.root) == f"{sha}-dirty"


def test_push_logs_in_with_the_password_on_stdin_and_pushes_arm64(
    docker: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "up")
    sha = _git_repo(stack.root)
    image_tasks.push(Context(), env="prod")

    calls = _calls(docker)
    login = next(c for c in calls if c["argv"][0] == "login")
    registry = stack.outputs["ecr_repository_url"].split("/")[0]
    assert login["argv"] == ["login", "--username", "AWS", "--password-stdin", registry]
    assert login["stdin"]  # the ECR token's password, only ever on stdin
    assert all(str(login["stdin"]) not in json.dumps(c["argv"]) for c in calls)
    build = next(c["argv"] for c in calls if c["argv"][:2] == ["buildx", "build"])
    assert build[build.index("--platform") + 1] == "linux/arm64"
    assert build[build.index("--tag") + 1] == f"{stack.outputs['ecr_repository_url']}:{sha}"
    assert "--push" in build
    assert calls.index(login) < calls.index(next(c for c in calls if c["argv"][:2] == ["buildx", "build"]))


def test_build_takes_the_base_images_from_flags_then_environment(
    docker: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "up")
    _git_repo(stack.root)
    monkeypatch.setenv("DAGOPS_PYTHON_IMAGE", "registry.local:5000/py/python:3.11-bookworm")
    monkeypatch.setenv("DAGOPS_UV_IMAGE", "dagops-local/uv:0.13.9-amd64")
    image_tasks.build(Context(), tag="v1", uv_image="mirror.example.org/astral-sh/uv:0.13.9")
    build = next(c["argv"] for c in _calls(docker) if c["argv"][:2] == ["buildx", "build"])
    args = [build[i + 1] for i, arg in enumerate(build) if arg == "--build-arg"]
    assert args == [
        "PYTHON_IMAGE=registry.local:5000/py/python:3.11-bookworm",
        "UV_IMAGE=mirror.example.org/astral-sh/uv:0.13.9",
    ]
    # The engine's own builder (docker driver), never a docker-container builder that must pull.
    assert build[build.index("--builder") + 1] == "desktop-linux"


def test_build_without_base_images_uses_the_dockerfile_defaults(
    docker: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "up")
    _git_repo(stack.root)
    image_tasks.build(Context(), tag="v1")
    build = next(c["argv"] for c in _calls(docker) if c["argv"][:2] == ["buildx", "build"])
    assert "--build-arg" not in build


@pytest.mark.parametrize("ref", ["Python:3.11", "python:3.11 --push", "-python", "python:", "a/../b"])
def test_a_bad_base_image_is_one_clear_error_before_docker_runs(
    docker: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "up")
    with pytest.raises(Exit, match="Invalid image reference for PYTHON_IMAGE") as exc:
        image_tasks.build(Context(), tag="v1", python_image=ref)
    assert exc.value.code == 1
    assert _calls(docker) == []
