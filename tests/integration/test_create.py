"""`invoke create`: a pipeline from the template loads and its test passes; bad names create nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dagops.errors import DagopsError
from dagops.operator.devstack.scaffold import create_pipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's code locations (main and the template) to create pipelines in."""
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    (tmp_path / "code_locations").mkdir()
    shutil.copy(REPO / "code_locations" / "locations.yaml", tmp_path / "code_locations")
    for name in ("main", "_template"):
        shutil.copytree(REPO / "code_locations" / name, tmp_path / "code_locations" / name, ignore=ignore)
    monkeypatch.setenv("DAGOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if "__pycache__" not in p.parts)


def test_created_pipeline_loads_and_its_test_passes(root: Path) -> None:
    created = create_pipeline("my_pipeline", root=root)
    location = root / "code_locations" / "main"
    assert created.module == location / "pipelines" / "my_pipeline.py"
    assert created.test == location / "tests" / "test_my_pipeline.py"
    assert created.check.startswith("ok: module definitions defines ")
    # The generated test, run as a user would: the location loads the new asset and it lands in S3.
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(created.test)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("My_Pipeline", "Invalid pipeline name"),
        ("my-pipeline", "Invalid pipeline name"),
        ("1st", "Invalid pipeline name"),
        ("", "Invalid pipeline name"),
        ("a" * 40, "Invalid pipeline name"),
        ("class", "Python keyword"),
        ("resources", "name the location uses"),
        ("numbers", "already exists"),
        ("raw_numbers", "already defines something named 'raw_numbers'"),
    ],
)
def test_bad_or_taken_names_create_nothing(root: Path, name: str, why: str) -> None:
    before = _tree(root)
    with pytest.raises(DagopsError, match=why):
        create_pipeline(name, root=root)
    assert _tree(root) == before


def test_unknown_location_creates_nothing(root: Path) -> None:
    before = _tree(root)
    with pytest.raises(DagopsError, match="No code location named 'nope'"):
        create_pipeline("fine_name", location="nope", root=root)
    assert _tree(root) == before


def test_a_template_that_breaks_the_location_is_rolled_back(root: Path) -> None:
    template = root / "code_locations" / "_template" / "pipeline.py.tmpl"
    template.write_text(template.read_text() + "\nraise RuntimeError('broken template')\n")
    before = _tree(root)
    with pytest.raises(DagopsError, match=r"would not load.*broken template"):
        create_pipeline("fine_name", root=root)
    assert _tree(root) == before


def test_invoke_create_reports_a_bad_name_in_one_line(root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "create", "--name", "Bad-Name"],
        cwd=REPO, env={**os.environ, "DAGOPS_ROOT": str(root)}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: Invalid pipeline name 'Bad-Name': use 1-39 characters, a lowercase letter first, "
        "then lowercase letters, digits or '_' (it becomes a Python module name)."
    ]
    assert not (root / "code_locations" / "main" / "pipelines" / "Bad-Name.py").exists()
