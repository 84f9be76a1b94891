"""Fixtures of the sync agent tests: source trees, a publish into the test's bucket, agent processes.

The moto S3 server is tests/unit/conftest.py's; ``s3``, ``bucket`` and ``fake_aws`` are tests/conftest.py's.
``free_port``, ``make_client`` and ``wait_for`` are re-exported for the test modules importing them here.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from moto_s3 import make_client as make_client
from polling import wait_for as wait_for

from dagops.operator.devstack.config import free_port as free_port
from dagops.publish import publish_location

GOOD_TREE = {
    "definitions.py": """
        import dagster as dg

        from pipelines.assets import numbers

        defs = dg.Definitions(assets=[numbers])
    """,
    "pipelines/__init__.py": "",
    "pipelines/assets.py": """
        import dagster as dg


        @dg.asset
        def numbers() -> list[int]:
            return [1, 2, 3]
    """,
    "data/seed.csv": "a,b\n1,2\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def tree_contents(root: Path) -> dict[str, str]:
    """relpath -> text of every file under ``root`` (following the ``current`` symlink)."""
    root = root.resolve()
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(autouse=True)
def _fake_aws(fake_aws: None) -> None:
    """Every sync test runs with tests/conftest.py's fake credentials."""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", GOOD_TREE)


@pytest.fixture
def publish(s3: Any, bucket: str) -> Any:
    def run(src: Path, location: str = "main", entry: str = "definitions.py") -> Any:
        return publish_location(s3, bucket, location, src, entry)

    return run


def agent_env(endpoint: str, bucket: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGOPS_", "DAGSTER_S3", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        PYTHONUNBUFFERED="1",
    )
    if bucket:
        env["DAGSTER_S3_BUCKET"] = bucket
    env.update(extra)
    return env
