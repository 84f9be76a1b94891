"""Integration fixtures: a real Postgres, a moto S3 server, and the real local stack (`invoke dev --detach`).

Postgres comes from testcontainers' PostgresContainer when a Docker engine answers, else from a local
PostgreSQL server started with dagops.operator.devstack.postgres (the same code `invoke dev` uses).
``DAGOPS_TEST_POSTGRES=container|local`` picks one explicitly (CI runs both: see test_postgres_sources.py);
a path that cannot run skips with its reason, or fails where DAGOPS_REQUIRE_DOCKER=1 asks for an engine.
The container's image is ``DAGOPS_POSTGRES_IMAGE`` (default postgres:16-alpine; `.ci/base-images.sh` builds
a local stand-in where no registry answers). The stack runs with free ports, a temporary state directory
and a 1 s sync interval.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from invoking import run_invoke
from pg_source import postgres_database, postgres_source

from dagops.operator.devstack import s3 as local_s3
from dagops.operator.devstack.config import DevConfig, free_port
from dagops.operator.devstack.postgres import PostgresDatabase
from dagops.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
BUCKET = "dagops-it"
SYNC_INTERVAL = 1.0


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabase]:
    """A Postgres database for Dagster's storage (see postgres_source)."""
    with postgres_database(postgres_source()) as database:
        yield database


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback (a real HTTP endpoint, shared by the stack and the tests)."""
    from moto.s3.responses import S3Response
    from moto.server import ThreadedMotoServer

    # S3 checks a conditional write (If-None-Match / If-Match) and stores the object atomically; moto
    # checks, then stores, so two racing writers can both pass the check. Serialise its PUT handler so
    # the emulator keeps S3's guarantee, which the publish lease and the manifest write rely on.
    lock = threading.Lock()
    unlocked_put = S3Response.put_object

    def atomic_put(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return unlocked_put(self, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(S3Response, "put_object", atomic_put)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    local_s3.wait_ready(endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        patch.undo()


@dataclass
class Stack:
    config: DevConfig
    env: dict[str, str]
    postgres: PostgresDatabase
    s3_endpoint: str
    ready_seconds: float
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.config.ui_url

    def s3(self) -> Any:
        return local_s3.client(self.s3_endpoint)

    def status(self, location: str = "main") -> dict[str, Any]:
        try:
            return dict(json.loads((self.config.code_dir / location / "status.json").read_text()))
        except (OSError, ValueError):
            return {}


@contextlib.contextmanager
def start_stack(
    postgres: PostgresDatabase, moto_endpoint: str, state_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """`invoke dev --detach` on the fixtures' Postgres and S3 with free ports; `invoke stop` after.

    ``extra_env`` (e.g. ``DAGOPS_ROOT`` of a project copy, ``DAGOPS_DEV_WATCH``) is added last.
    """
    settings = {
        "MODE": "embedded",
        "UI_PORT": free_port(),
        "CODE_SERVER_BASE_PORT": free_ports(16)[0],
        "S3_URL": moto_endpoint,
        "BUCKET": BUCKET,
        "POSTGRES_HOST": postgres.host,
        "POSTGRES_PORT": postgres.port,
        "POSTGRES_USER": postgres.user,
        "POSTGRES_PASSWORD": postgres.password,
        "POSTGRES_DB": postgres.db,
        "SYNC_INTERVAL": SYNC_INTERVAL,
        # These tests publish their own trees; the watcher would publish the checkout's (on when asked).
        "WATCH": "false",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGOPS_DEV_")}
    env.update({f"DAGOPS_DEV_{k}": str(v) for k, v in settings.items()})
    env["DAGOPS_STATE_DIR"] = str(state_dir)
    env.pop("DAGOPS_ROOT", None)
    env.update(extra_env or {})
    config = DevConfig.resolve({}, environ=env, state_dir=str(state_dir))
    started = time.monotonic()
    proc = run_invoke("dev", "--detach", env=env, timeout=400)
    ready = time.monotonic() - started
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            for p in sorted(config.logs_dir.glob("*.log"))
        )
        run_invoke("stop", env=env, timeout=120)
        pytest.fail(f"`invoke dev --detach` failed: {proc.stdout}{proc.stderr}\n{logs}")
    try:
        yield Stack(config=config, env=env, postgres=postgres, s3_endpoint=moto_endpoint, ready_seconds=ready)
    finally:
        stopped = run_invoke("stop", env=env, timeout=180)
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="session")
def stack_starter() -> Any:
    """``start_stack`` for modules that need their own stack (another project root, other settings)."""
    return start_stack


@pytest.fixture(scope="module")
def stack(
    postgres: PostgresDatabase, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The real stack: sync agent + code server per location, webserver and daemon, on the fixtures above."""
    with start_stack(postgres, moto_endpoint, tmp_path_factory.mktemp("stack")) as started:
        yield started


# Figures of the whole run: this process's, and under pytest-xdist every worker's (see pytest_testnodedown).
_FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Measured figures, printed at the end of the run (and written to .dagops/figures/integration.json)."""
    found: dict[str, str] = {}
    yield found
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:
        # A pytest-xdist worker prints nothing: the controller gets them when the worker finishes.
        workeroutput["figures"] = json.dumps(found)
    else:
        _FIGURES.update(found)


def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, in the controller: a worker finished; keep its figures."""
    _FIGURES.update(json.loads(getattr(node, "workeroutput", {}).get("figures", "{}")))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.write_line("")
    terminalreporter.write_line("measured figures:")
    for key, value in sorted(_FIGURES.items()):
        terminalreporter.write_line(f"  {key}: {value}")
    out = REPO / ".dagops" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    (out / "integration.json").write_text(json.dumps(_FIGURES, indent=2))
