"""Shared by every test directory: the ``docker_engine`` fixture (see docker_engine.py for the rule), fake
AWS credentials, an S3 client and a fresh bucket on the directory's ``moto_endpoint`` (tests/unit and
tests/integration each start their moto server in their conftest), and the sync agent tests' source tree,
publish and code folder (tests/unit/sync and tests/integration/sync; trees from synctrees.py).

A test module opts into the credentials with ``pytestmark = pytest.mark.usefixtures("fake_aws")``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from docker_engine import need_docker_engine
from moto_s3 import make_client
from synctrees import GOOD_TREE, write_tree

from dagops.publish import publish_location

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip without a Docker engine, or fail when DAGOPS_REQUIRE_DOCKER=1 says this run needs one."""
    need_docker_engine()


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials in us-east-1; no profile, endpoint, bucket or agent setting from the shell."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "DAGSTER_S3_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    for name in ("LOCATION", "CODE_DIR", "SYNC_INTERVAL", "GRPC_HOST", "GRPC_PORT", "WEBSERVER_URL"):
        monkeypatch.delenv(f"DAGOPS_{name}", raising=False)


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """An S3 client on the moto server (``moto_endpoint`` comes from the directory's conftest)."""
    return make_client(moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new, empty bucket on the moto server."""
    name = f"test-bucket-{next(_bucket_numbers)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """Where a sync agent keeps its locations' trees and status."""
    return tmp_path / "code"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A code location that imports (synctrees.GOOD_TREE), to publish."""
    return write_tree(tmp_path / "src", GOOD_TREE)


@pytest.fixture
def publish(s3: Any, bucket: str) -> Any:
    """``publish(src, location="main", entry="definitions.py")`` into the test's bucket."""

    def run(src: Path, location: str = "main", entry: str = "definitions.py") -> Any:
        return publish_location(s3, bucket, location, src, entry)

    return run
