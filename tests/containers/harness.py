"""Harness of the tests on the built image: the image itself, and the containers each role talks to.

Every container is started from an image, on one user-defined Docker network, as ECS or compose would:
Postgres (alias ``postgres``), moto's S3 server (``s3``), the image's roles. Base and service images come
from the environment, with the public images as defaults:

- ``DAGOPS_PYTHON_IMAGE`` / ``DAGOPS_UV_IMAGE``: images/Dockerfile's bases (``invoke image.build``'s own)
- ``DAGOPS_POSTGRES_IMAGE`` (default postgres:15), ``DAGOPS_MOTO_IMAGE`` (default motoserver/moto)
- ``DAGOPS_TEST_PREFIX``: prefix of every container, network and image tag created here

Where no registry answers, `.ci/base-images.sh` builds local stand-ins; ``export $(.ci/base-images.sh
--print)`` sets the variables above to them. Without an engine the tests skip (or fail, see
tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for

from dagops import webserver
from dagops.operator.aws import image as images
from dagops.operator.devstack import s3 as local_s3

REPO = Path(__file__).resolve().parents[2]
PREFIX = os.environ.get("DAGOPS_TEST_PREFIX", "dagops-test")
POSTGRES_IMAGE = os.environ.get("DAGOPS_POSTGRES_IMAGE") or "postgres:15"
MOTO_IMAGE = os.environ.get("DAGOPS_MOTO_IMAGE") or "motoserver/moto:5.2.5"
BUCKET = "dagops-containers"
PG = {"user": "dagster", "password": "container-test-only", "db": "dagster"}
LOCATION = "main"
# Settings every role of the image reads, as the containers see them (names on the test network).
ROLE_ENV = {
    "DAGSTER_S3_BUCKET": BUCKET,
    "AWS_ENDPOINT_URL": "http://s3:5000",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "DAGSTER_PG_HOST": "postgres",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": PG["db"],
    "DAGSTER_PG_USERNAME": PG["user"],
    "DAGSTER_PG_PASSWORD": PG["password"],
    "DAGOPS_ENV": "containers",
    "DAGOPS_SYNC_INTERVAL": "2",
}
# The local instance config (the cloud's, with the default run launcher), mounted as the template.
INSTANCE_TEMPLATE = "/opt/dagster/compose/dagster.yaml"


@dataclass
class Engine:
    """The Docker engine, the built image, the test network and every container started on it."""

    client: Any
    image: str
    network: str
    figures: dict[str, str]
    started: list[Any] = field(default_factory=list)

    def run(
        self,
        name: str,
        image: str | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        alias: str | None = None,
        ports: list[int] = (),  # type: ignore[assignment]
        **kwargs: Any,
    ) -> Any:
        """Start a detached container ``<prefix>-<name>-<id>`` on the network (ports on 127.0.0.1)."""
        endpoint = self.client.api.create_endpoint_config(aliases=[alias] if alias else None)
        container = self.client.containers.run(
            image or self.image,
            command=command,
            name=f"{PREFIX}-{name}-{uuid.uuid4().hex[:6]}",
            environment=env or {},
            network=self.network,
            networking_config={self.network: endpoint},
            ports={f"{p}/tcp": ("127.0.0.1", None) for p in ports},
            detach=True,
            **kwargs,
        )
        self.started.append(container)
        return container

    @staticmethod
    def port(container: Any, port: int) -> int:
        container.reload()
        return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])

    @staticmethod
    def logs(container: Any, tail: int = 60) -> str:
        try:
            text = container.logs(tail=tail).decode(errors="replace")
        except Exception as exc:
            text = f"(no logs: {exc})"
        return f"--- {container.name}\n{text}"


# Measured figures, printed at the end of the session by conftest.pytest_terminal_summary.
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def figures() -> dict[str, str]:
    return FIGURES


def build_image(
    platform: str | None, tag_suffix: str, figures: dict[str, str], bases: dict[str, str] | None = None
) -> str:
    """Build images/Dockerfile with ``invoke image.build``'s code path; the image reference."""
    tag = f"{PREFIX}-{images.git_tag(REPO)}{tag_suffix}"
    bases = images.base_images() if bases is None else bases
    started = time.monotonic()
    ref = images.build(tag, platform, echo=lambda line: None, root=REPO, build_args=bases)
    seconds = time.monotonic() - started
    import docker

    size = docker.from_env().images.get(ref).attrs["Size"]
    arch = (platform or "native").split("/")[-1]
    figures[f"image build ({arch})"] = f"{seconds:.0f} s (cached layers count as built)"
    figures[f"image size ({arch})"] = f"{size / 1e6:.0f} MB"
    return ref


@pytest.fixture(scope="session")
def engine(docker_engine: None, figures: dict[str, str]) -> Iterator[Engine]:
    import docker

    client = docker.from_env()
    network = client.networks.create(f"{PREFIX}-net-{uuid.uuid4().hex[:6]}", driver="bridge")
    eng = Engine(client=client, image="", network=network.name, figures=figures)
    try:
        yield eng
    finally:
        for container in reversed(eng.started):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        network.remove()


@pytest.fixture(scope="session")
def native_image(engine: Engine) -> str:
    """The image for this machine's architecture, built once; roles start from it by default."""
    engine.image = build_image(None, "", engine.figures)
    return engine.image


@pytest.fixture(scope="session")
def postgres(engine: Engine) -> int:
    """A Postgres container (alias ``postgres``); its port on 127.0.0.1."""
    env = {"POSTGRES_USER": PG["user"], "POSTGRES_PASSWORD": PG["password"], "POSTGRES_DB": PG["db"]}
    container = engine.run("postgres", POSTGRES_IMAGE, env=env, alias="postgres", ports=[5432])
    ready = ["pg_isready", "-h", "127.0.0.1", "-U", PG["user"], "-d", PG["db"]]
    wait_for(
        lambda: container.exec_run(ready).exit_code == 0,
        60,
        "Postgres to accept connections",
        interval=0.5,
        logs=lambda: engine.logs(container),
    )
    return engine.port(container, 5432)


@pytest.fixture(scope="session")
def s3_endpoint(engine: Engine) -> str:
    """moto's S3 server in a container (alias ``s3``), with location ``main`` published to it."""
    container = engine.run("s3", MOTO_IMAGE, alias="s3", ports=[5000])
    endpoint = f"http://127.0.0.1:{engine.port(container, 5000)}"
    wait_for(
        lambda: local_s3.is_ready(endpoint),
        60,
        "moto's server to answer",
        interval=0.5,
        logs=lambda: engine.logs(container),
    )
    from dagops.publish import publish_location

    s3 = local_s3.client(endpoint)
    local_s3.ensure_bucket(s3, BUCKET)
    publish_location(s3, BUCKET, LOCATION, REPO / "code_locations" / LOCATION)
    return endpoint


@pytest.fixture(scope="session")
def code_location(engine: Engine, native_image: str, s3_endpoint: str, postgres: int) -> Any:
    """The code-location role for ``main`` (alias ``code-main``): syncs from S3, then serves gRPC on 4000."""
    env = {**ROLE_ENV, "DAGOPS_LOCATION": LOCATION}
    return engine.run("code-main", command=["code-location"], env=env, alias="code-main", ports=[4000])


@pytest.fixture(scope="session")
def webserver_url(engine: Engine, native_image: str, code_location: Any, postgres: int) -> str:
    """The webserver role, its workspace naming code-main:4000; its URL on 127.0.0.1."""
    env = {
        **ROLE_ENV,
        "DAGOPS_CODE_LOCATIONS": f"{LOCATION}=code-main:4000",
        "DAGOPS_INSTANCE_TEMPLATE": INSTANCE_TEMPLATE,
    }
    mount = {str(REPO / "compose" / "dagster.yaml"): {"bind": INSTANCE_TEMPLATE, "mode": "ro"}}
    started = time.monotonic()
    container = engine.run("webserver", command=["webserver"], env=env, ports=[3000], volumes=mount)
    url = f"http://127.0.0.1:{engine.port(container, 3000)}"

    def loaded() -> bool:
        if webserver.server_info(url) is None:
            return False
        return webserver.locations(url).get(LOCATION, {}).get("loadStatus") == "LOADED"

    def logs() -> str:
        return engine.logs(container) + "\n" + engine.logs(code_location)

    wait_for(loaded, 180, f"the webserver to list {LOCATION} LOADED", interval=0.5, logs=logs)
    engine.figures["webserver start to main LOADED"] = f"{time.monotonic() - started:.1f} s"
    return url


def run_status(url: str, run_id: str) -> str:
    query = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
    return str(webserver.query(url, query, {"id": run_id})["runOrError"].get("status"))


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
