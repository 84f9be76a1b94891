"""Fixtures of the sync agent tests: a moto S3 server on loopback, a bucket per test, source trees."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from dagops.publish import publish_location

_bucket_numbers = itertools.count()

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "DAGSTER_S3_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    for name in ("LOCATION", "CODE_DIR", "SYNC_INTERVAL", "GRPC_HOST", "GRPC_PORT", "WEBSERVER_URL"):
        monkeypatch.delenv(f"DAGOPS_{name}", raising=False)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_client(endpoint: str) -> Any:
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return make_client(moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"sync-test-{next(_bucket_numbers)}"
    s3.create_bucket(Bucket=name)
    return name


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


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, proc: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the agent exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
