"""Fixtures of the sync agent tests: a source tree and a publish into the test's bucket.

Trees and agent environments are tests/synctrees.py's; the moto S3 server is tests/unit/conftest.py's;
``s3``, ``bucket`` and ``fake_aws`` are tests/conftest.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from synctrees import GOOD_TREE, write_tree

from dagops.publish import publish_location


@pytest.fixture(autouse=True)
def _fake_aws(fake_aws: None) -> None:
    """Every sync test runs with tests/conftest.py's fake credentials."""


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """Where an agent keeps its locations' trees and status."""
    return tmp_path / "code"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", GOOD_TREE)


@pytest.fixture
def publish(s3: Any, bucket: str) -> Any:
    def run(src: Path, location: str = "main", entry: str = "definitions.py") -> Any:
        return publish_location(s3, bucket, location, src, entry)

    return run
