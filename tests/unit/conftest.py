"""Shared by the unit tests: fake AWS credentials, a moto S3 server on loopback, a client, a fresh bucket.

A test module opts into the credentials with ``pytestmark = pytest.mark.usefixtures("fake_aws")`` (or a
conftest's autouse fixture); ``s3`` and ``bucket`` start the server on first use, once per session (per
pytest-xdist worker): each test gets a bucket of its own, so tests never see each other's objects.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from moto_s3 import make_client

from dagops.localstack.config import free_port

_bucket_numbers = itertools.count()


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


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback (a real HTTP endpoint), on a free port."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return make_client(moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new, empty bucket on the moto server."""
    name = f"unit-test-{next(_bucket_numbers)}"
    s3.create_bucket(Bucket=name)
    return name
