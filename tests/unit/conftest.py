"""The unit tests' moto S3 server (``s3``, ``bucket`` and ``fake_aws`` are in tests/conftest.py).

The server starts on first use, once per session (per pytest-xdist worker); each test gets a bucket of
its own, so tests never see each other's objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from dagops.operator.devstack.config import free_port

# moto's EC2 loads some 5,000 default AMIs into every region a mock starts (about 1 s per test that
# touches EC2, half the set-up of tests/unit/aws); no unit test reads them.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback (a real HTTP endpoint), on a free port."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
