"""Faults injected into the real local stack; it keeps serving, recovers, and loses nothing.

One embedded stack (``devstack.control.start_detached``: local Postgres, sync agent + ``dagster api
grpc`` code server, webserver, daemon) serves the module. Its S3 endpoint is a moto server reached through
``FlakyProxy``, a TCP forwarder the tests can cut (connections reset) and restore, so "S3 unreachable" is
a real network failure while the tests themselves still publish straight to moto. A sampler thread checks,
the whole time, that ``current`` is always a complete tree matching its manifest (``SWAP_CHECK``).

Faults injected (``FAULTS`` counts them for the closing note): S3 cut, syntax-error upload, missing-
dependency upload, objects without a manifest, a manifest ahead of its objects, a manifest naming a
missing object, kill -9 of the code server with a run in flight, Postgres restart, two sync agents on one
code folder, two publishes at once (threads and processes). Every run launched is looked up in Postgres at
the end: ``records lost`` must be zero.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest
from moto.server import ThreadedMotoServer
from polling import wait_for
from synctrees import write_tree

from dagops import webserver
from dagops.errors import DagopsError
from dagops.manifest import MANIFEST_NAME, Manifest
from dagops.operator.devstack import control
from dagops.operator.devstack import state as stack_state
from dagops.operator.devstack.config import DevConfig, free_port
from dagops.operator.devstack.postgres import find_bin_dir
from dagops.ports import free_ports
from dagops.publish import publish_location

pytestmark = pytest.mark.skipif(find_bin_dir() is None, reason="PostgreSQL server binaries not installed")

BUCKET = "dagops-faults"
LOCATION = "main"
INTERVAL = 12.0  # long enough for the S3 backoff (1, 2, 4, 8 s) to show; tests nudge the agent (SIGUSR1)
FAULTS: list[str] = []
LAUNCHED_RUNS: list[str] = []

DEFINITIONS = """
import time

import dagster as dg


{assets}


@dg.asset
def slow() -> int:
    time.sleep(8)
    return 1


slow_job = dg.define_asset_job("slow_job", selection=["slow"])
quick_job = dg.define_asset_job("quick_job", selection=["alpha"])
hourly = dg.ScheduleDefinition(name="hourly", job=slow_job, cron_schedule="0 * * * *")

defs = dg.Definitions(assets=[{names}, slow], jobs=[slow_job, quick_job], schedules=[hourly])
"""


def tree(*assets: str, extra: str = "") -> dict[str, str]:
    """A code location whose Definitions hold ``assets`` (plus ``slow``, its job and a schedule)."""
    body = "\n\n".join(f"@dg.asset\ndef {name}() -> int:\n    return 1" for name in assets)
    text = DEFINITIONS.format(assets=body, names=", ".join(assets))
    return {
        "definitions.py": extra + textwrap.dedent(text),
        "helpers/__init__.py": "",
        "helpers/data.txt": "x\n",
    }


# --------------------------------------------------------------------------- helpers


class FlakyProxy:
    """TCP forwarder 127.0.0.1:<port> -> target; ``cut()`` resets every connection until ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.closed = threading.Event()
        self.refused: list[float] = []
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self.up.is_set():
                self.refused.append(time.monotonic())
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()  # RST: the client sees "connection reset"
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._live |= {conn, upstream}
            threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                if not self.up.is_set() or self.closed.is_set():
                    break
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._live -= {a, b}

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            live = list(self._live)
        for s in live:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.closed.set()
        self.cut()
        self.listener.close()


# Every wait on the stack: an error from a component that is (re)starting means "not yet".
NOT_YET = (DagopsError, OSError, ValueError, KeyError, psycopg2.Error)
wait_for_stack = functools.partial(wait_for, interval=0.25, ignore=NOT_YET)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_matches_manifest(tree_dir: Path, manifest: Manifest) -> str | None:
    """None when ``tree_dir`` holds exactly the manifest's files with its checksums, else what differs."""
    found = {
        p.relative_to(tree_dir).as_posix()
        for p in tree_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    if found != set(manifest.files):
        return f"files {sorted(found ^ set(manifest.files))} differ from the manifest"
    for rel, item in manifest.files.items():
        if sha256(tree_dir / rel) != item.sha256:
            return f"{rel} does not match the manifest"
    return None


class SwapChecker(threading.Thread):
    """Samples ``<code_dir>/<location>/current`` continuously: it must always be a complete, verified tree."""

    def __init__(self, location_root: Path) -> None:
        super().__init__(daemon=True)
        self.root = location_root
        self.samples = 0
        self.violations: list[str] = []
        self.revisions: set[str] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            self.sample()

    def sample(self) -> None:
        current = self.root / "current"
        try:
            target = os.readlink(current)
        except OSError:
            return  # no release yet
        revision = Path(target).name
        release = self.root / target
        sidecar = release.parent / f"{revision}.manifest.json"
        try:
            manifest = Manifest.from_json(sidecar.read_bytes())
            problem = tree_matches_manifest(release, manifest)
        except (OSError, DagopsError) as exc:
            problem = f"unreadable: {exc}"
        if problem:
            with contextlib.suppress(OSError):
                if os.readlink(current) != target:
                    return  # the release was pruned after a newer swap: not a torn read of `current`
            self.violations.append(f"current -> {target}: {problem}")
        else:
            self.revisions.add(revision)
        self.samples += 1


@dataclass
class Stack:
    config: DevConfig
    state: dict[str, Any]
    s3: Any  # straight to moto, never through the proxy
    proxy: FlakyProxy
    source: Path
    checker: SwapChecker
    published: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.config.ui_url

    @property
    def location_root(self) -> Path:
        return self.config.code_dir / LOCATION

    def log(self) -> str:
        return (self.config.logs_dir / f"sync-{LOCATION}.log").read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        return dict(json.loads((self.location_root / "status.json").read_text()))

    def serving(self) -> str | None:
        with contextlib.suppress(OSError):
            return Path(os.readlink(self.location_root / "current")).name
        return None

    def component_pid(self, name: str) -> int:
        return int(stack_state.read_state(self.config)["components"][name])

    def agent_pid(self) -> int:
        return self.component_pid(f"sync-{LOCATION}")

    def nudge(self) -> None:
        """SIGUSR1: the agent polls now instead of at the end of its interval."""
        os.kill(self.agent_pid(), signal.SIGUSR1)

    def publish(self, files: dict[str, str]) -> str:
        write_tree(self.source, files, replace=True)
        result = publish_location(self.s3, BUCKET, LOCATION, self.source)
        self.published.append(result.revision)
        return result.revision

    def code_server_pids(self) -> list[int]:
        """Every ``dagster api grpc`` process listening on the location's port (two during a hand-over)."""
        port = str(self.config.code_server_base_port)
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                # NUL-separated, or one line where the process set its title (a standby turned server).
                words = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
            except OSError:
                continue
            if (
                "api" in words
                and "grpc" in words
                and "--port" in words
                and words[words.index("--port") + 1] == port
            ):
                found.append(int(proc.name))
        return found

    def code_server_pid(self) -> int | None:
        """The one code server of the location; None while there is none, or two (a hand-over)."""
        pids = self.code_server_pids()
        return pids[0] if len(pids) == 1 else None

    def assets(self) -> set[str]:
        """The asset keys the webserver shows for the location (raises while it is not loaded)."""
        data = webserver.query(self.url, ASSETS_QUERY)["workspaceOrError"]
        for entry in data["locationEntries"]:
            if entry["name"] != LOCATION:
                continue
            loaded = entry["locationOrLoadError"] or {}
            if entry["loadStatus"] != "LOADED" or loaded.get("__typename") != "RepositoryLocation":
                raise DagopsError(f"location not loaded: {entry['loadStatus']} {loaded}")
            return {
                "/".join(node["assetKey"]["path"])
                for repo in loaded["repositories"]
                for node in repo["assetNodes"]
            }
        raise DagopsError("location missing from the workspace")

    def pg(self) -> Any:
        return psycopg2.connect(
            host=self.config.host,
            port=self.config.postgres_port,
            user=self.config.postgres_user,
            password=self.config.postgres_password,
            dbname=self.config.postgres_db,
            connect_timeout=3,
        )

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = self.pg()
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def launch(self, job: str = "slow_job") -> str:
        data = webserver.query(
            self.url,
            LAUNCH_MUTATION,
            {
                "p": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": "__repository__",
                        "jobName": job,
                    },
                    "runConfigData": {},
                }
            },
        )["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        run_id = str(data["run"]["runId"])
        LAUNCHED_RUNS.append(run_id)
        return run_id

    def run_status(self, run_id: str) -> str:
        return str(webserver.query(self.url, RUN_QUERY, {"id": run_id})["runOrError"]["status"])


ASSETS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
  __typename
  ... on RepositoryLocation { repositories { name assetNodes { assetKey { path } } } }
  ... on PythonError { message } } } } } }
"""
LAUNCH_MUTATION = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUN_QUERY = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
SCHEDULE_SELECTOR = {
    "repositoryLocationName": LOCATION,
    "repositoryName": "__repository__",
    "scheduleName": "hourly",
}
START_SCHEDULE = """
mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) {
  __typename ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }
"""
SCHEDULE_QUERY = """
query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
  __typename ... on Schedule { scheduleState { status } } } }
"""
DAEMON_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy lastHeartbeatTime } } } }"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="dagops-local",
        aws_secret_access_key="dagops-local",
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Postgres runs as `postgres` when we are root: the state folder must be reachable by it.
    base = Path(tempfile.mkdtemp(prefix="dagops-faults-", dir="/tmp"))
    base.chmod(0o755)
    root = base / "repo"
    (root / "code_locations").mkdir(parents=True)
    (root / "code_locations" / "locations.yaml").write_text(
        "locations:\n- name: main\n  source: code_locations/main\n  entry: definitions.py\n"
    )
    write_tree(root / "code_locations" / "main", tree("alpha"))

    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    proxy = FlakyProxy(moto_port)
    config = DevConfig.resolve(
        {},
        environ={},
        mode="embedded",
        ui_port=free_port(),
        postgres_port=free_port(),
        code_server_base_port=free_ports(16)[0],
        s3_url=f"http://127.0.0.1:{proxy.port}",
        bucket=BUCKET,
        sync_interval=INTERVAL,
        state_dir=str(base / "state"),
        startup_timeout=240.0,
    )
    saved = {k: os.environ.get(k) for k in ("DAGOPS_ROOT", "DAGOPS_STATE_DIR")}
    os.environ["DAGOPS_ROOT"] = str(root)
    os.environ["DAGOPS_STATE_DIR"] = str(base / "state")
    checker = SwapChecker(config.code_dir / LOCATION)
    try:
        with open(os.devnull, "w") as quiet:
            state = control.start_detached(config, console=quiet)
        checker.start()
        s3 = _s3_client(f"http://127.0.0.1:{moto_port}")
        built = Stack(config, state, s3, proxy, base / "source", checker)
        wait_for_stack(lambda: "alpha" in built.assets(), 120, "the location to load")
        yield built
    finally:
        checker.stopping.set()
        with open(os.devnull, "w") as quiet:
            control.stop(config, console=quiet)
        proxy.close()
        moto.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # Keep the component logs of a failed run for the CI artifacts; the rest goes.
        kept = Path(os.environ.get("DAGOPS_FAULTS_LOGS", "/tmp/dagops-faults-logs"))
        shutil.rmtree(kept, ignore_errors=True)
        with contextlib.suppress(OSError):
            shutil.copytree(config.logs_dir, kept)
        shutil.rmtree(base, ignore_errors=True)
        # The closing note quotes these.
        print(f"\nfaults injected: {len(FAULTS)}: {', '.join(FAULTS)}")
        print(f"current sampled {checker.samples} times, {len(checker.violations)} violations")


def wait_serving(stack: Stack, revision: str, timeout: float = 90) -> None:
    wait_for_stack(lambda: stack.serving() == revision, timeout, f"revision {revision[:12]} to be served")


# --------------------------------------------------------------------------- faults


def test_s3_cut_keeps_serving_backs_off_and_catches_up(stack: Stack) -> None:
    good = stack.serving()
    assert good is not None
    before_assets = stack.assets()
    server_pid = stack.code_server_pid()
    failures_before = stack.status()["consecutive_failures"]

    FAULTS.append("s3-unreachable")
    stack.proxy.cut()
    stack.nudge()
    # Published meanwhile (straight to moto): the agent cannot see it until S3 comes back.
    newer = stack.publish(tree("alpha", "beta"))
    seen: list[tuple[float, int]] = []
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            count = stack.status()["consecutive_failures"]
            if not seen or seen[-1][1] != count:
                seen.append((time.monotonic(), count))
        time.sleep(0.05)
    # Still serving the last good code, through the same code server, with the same assets.
    assert stack.serving() == good
    assert stack.code_server_pid() == server_pid
    assert stack.assets() == before_assets
    status = stack.status()
    assert status["state"] == "error" and "S3" in (status["last_error"] or ""), status
    assert "error: S3" in stack.log()
    # Backoff: the gaps between failed polls grow (1 s, 2 s, 4 s ...), they do not hammer S3.
    failures = [(t, n) for t, n in seen if n > failures_before]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(failures)]
    # Retries start within a few seconds (not a whole interval later), then back off: 1 s, 2 s, 4 s...
    # (each gap also holds botocore's one quick retry of the request, up to 1 s).
    assert len(gaps) >= 2, f"too few polls while S3 was cut: {seen}"
    assert gaps[0] < 3.5, f"the first retry waited {gaps[0]:.1f}s"
    assert gaps[-1] >= 3.5, f"no backoff in the poll gaps {gaps}"
    assert len(failures) <= 7, f"S3 was polled {len(failures)} times in 14 s: no backoff"

    stack.proxy.restore()
    restored = time.monotonic()
    wait_serving(stack, newer, timeout=INTERVAL + 60)  # no nudge: the agent's own retry finds it
    print(f"caught up {time.monotonic() - restored:.1f}s after S3 came back")
    wait_for_stack(lambda: stack.assets() == before_assets | {"beta"}, 60, "beta in the UI")
    assert stack.status()["state"] == "ok"


@pytest.mark.parametrize(
    ("kind", "files", "error"),
    [
        ("syntax-error", tree("alpha", "beta", extra="def broken(:\n    pass\n"), "SyntaxError"),
        (
            "missing-dependency",
            tree("alpha", "beta", extra="import not_installed_pkg\n"),
            "not_installed_pkg",
        ),
    ],
)
def test_upload_that_fails_to_import_is_not_served(
    stack: Stack, kind: str, files: dict[str, str], error: str
) -> None:
    good = stack.serving()
    assets = stack.assets()
    supervisor_pid, agent_pid = stack_state.running_pid(stack.config), stack.agent_pid()
    FAULTS.append(f"upload-{kind}")
    bad = stack.publish(files)
    stack.nudge()
    wait_for_stack(lambda: stack.status()["bad_revision"] == bad, 90, "the rejection")
    status = stack.status()
    assert status["state"] == "error" and error in status["last_error"], status
    assert stack.serving() == good and stack.assets() == assets
    assert re.search(rf"error: revision {bad[:12]} rejected.*{error}", stack.log()), stack.log()[-2000:]
    # `python -m dagops.runtime.sync status` shows it (its exit code is the container health: still serving).
    shown = subprocess.run(
        [sys.executable, "-m", "dagops.runtime.sync", "status", "--location", LOCATION,
         "--code-dir", str(stack.config.code_dir), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    shown_status = json.loads(shown.stdout)
    assert shown_status["state"] == "error" and error in shown_status["last_error"], shown
    assert shown_status["revision"] == good

    fixed = stack.publish(tree("alpha", "beta", f"fixed_{kind.replace('-', '_')}"))
    stack.nudge()
    wait_serving(stack, fixed)
    wait_for_stack(
        lambda: f"fixed_{kind.replace('-', '_')}" in stack.assets(), 60, "the fixed asset in the UI"
    )
    assert stack.status()["state"] == "ok"
    # Recovered without a restart of the stack or the agent.
    assert (stack_state.running_pid(stack.config), stack.agent_pid()) == (supervisor_pid, agent_pid)


def _put(stack: Stack, rel: str, body: bytes) -> None:
    stack.s3.put_object(Bucket=BUCKET, Key=f"dags/{LOCATION}/{rel}", Body=body)


def test_upload_caught_half_way_is_never_served(stack: Stack) -> None:
    good = stack.serving()
    assets = stack.assets()
    half = tree("alpha", "beta", "half")
    FAULTS.append("objects-without-manifest")
    # 1. New objects, the old manifest: the agent must keep what the manifest says.
    _put(stack, "definitions.py", half["definitions.py"].encode())
    _put(stack, "helpers/new_module.py", b"X = 1\n")
    stack.nudge()
    time.sleep(3)
    assert stack.serving() == good and stack.assets() == assets

    # 2. A manifest ahead of its objects: checksums that do not match what S3 holds.
    FAULTS.append("manifest-ahead-of-objects")
    write_tree(stack.source, tree("alpha", "beta", "complete"), replace=True)
    from dagops.manifest import build

    manifest, _ = build(LOCATION, stack.source, "definitions.py")
    stack.s3.put_object(
        Bucket=BUCKET, Key=f"dags/{LOCATION}/{MANIFEST_NAME}", Body=manifest.stamped().to_json()
    )
    stack.nudge()
    wait_for_stack(
        lambda: "does not match" in (stack.status()["last_error"] or ""),
        60,
        "the agent to notice the mismatch",
    )
    assert stack.serving() == good and stack.assets() == assets

    # 3. A manifest naming an object that is not there at all.
    FAULTS.append("manifest-names-missing-object")
    write_tree(
        stack.source, {**tree("alpha", "beta", "complete"), "helpers/late.py": "LATE = 1\n"}, replace=True
    )
    manifest, _ = build(LOCATION, stack.source, "definitions.py")
    _put(stack, "definitions.py", stack.source.joinpath("definitions.py").read_bytes())
    stack.s3.put_object(
        Bucket=BUCKET, Key=f"dags/{LOCATION}/{MANIFEST_NAME}", Body=manifest.stamped().to_json()
    )
    stack.nudge()
    wait_for_stack(
        lambda: "missing" in (stack.status()["last_error"] or ""),
        60,
        "the agent to notice the missing object",
    )
    assert stack.serving() == good and stack.assets() == assets

    # The rest of the upload lands: the same manifest is now complete and is served.
    _put(stack, "helpers/late.py", b"LATE = 1\n")
    stack.nudge()
    wait_serving(stack, manifest.revision)
    wait_for_stack(lambda: "complete" in stack.assets(), 60, "the completed upload in the UI")
    stack.published.append(manifest.revision)


def test_code_server_killed_comes_back_and_the_run_is_recorded(stack: Stack) -> None:
    wait_for_stack(lambda: stack.code_server_pid() and stack.assets(), 60, "one settled code server")
    run_id = stack.launch()
    wait_for_stack(lambda: stack.run_status(run_id) in {"STARTED", *TERMINAL}, 90, "the run to start")
    FAULTS.append("code-server-kill-9")
    pid = None
    for _ in range(20):  # the pid of the code server serving right now (a swap may just have replaced it)
        pid = wait_for_stack(stack.code_server_pid, 30, "a code server")
        try:
            os.kill(pid, signal.SIGKILL)
            break
        except ProcessLookupError:
            time.sleep(0.5)
    else:
        raise AssertionError("could not kill the code server")
    new_pid = wait_for_stack(
        lambda: (p := stack.code_server_pid()) not in (None, pid) and p, 60, "a new code server"
    )
    assert new_pid != pid
    wait_for_stack(lambda: "complete" in stack.assets(), 90, "the location to load again")
    assert "exited with code -9" in stack.log(), stack.log()[-2000:]
    # The run in flight is not lost: it reaches a terminal status, recorded in Postgres.
    final = wait_for_stack(
        lambda: (s := stack.run_status(run_id)) in TERMINAL and s, 150, "a terminal run status"
    )
    print(f"\nthe run in flight when its code server was killed ended {final}")
    rows = stack.sql("SELECT status FROM runs WHERE run_id = %s", run_id)
    assert rows == [(final,)]
    # And the location works: a new run succeeds.
    again = stack.launch()
    assert (
        wait_for_stack(lambda: (s := stack.run_status(again)) in TERMINAL and s, 120, "the next run")
        == "SUCCESS"
    )


def test_postgres_restart_loses_nothing(stack: Stack) -> None:
    first = stack.launch("quick_job")
    assert wait_for_stack(
        lambda: (s := stack.run_status(first)) in TERMINAL and s, 120, "a run before the restart"
    ) == ("SUCCESS")
    started = webserver.query(stack.url, START_SCHEDULE, {"s": SCHEDULE_SELECTOR})["startSchedule"]
    assert started["__typename"] == "ScheduleStateResult", started
    runs_before = stack.sql("SELECT run_id, status FROM runs ORDER BY run_id")
    instigators_before = stack.sql("SELECT selector_id, status FROM instigators ORDER BY selector_id")
    assert runs_before and instigators_before

    stopped = restart_postgres(stack)
    assert stack.sql("SELECT run_id, status FROM runs ORDER BY run_id") == runs_before
    assert stack.sql("SELECT selector_id, status FROM instigators ORDER BY selector_id") == instigators_before

    # The webserver reconnects: it answers from the database again.
    def webserver_ok() -> bool:
        state = webserver.query(stack.url, SCHEDULE_QUERY, {"s": SCHEDULE_SELECTOR})["scheduleOrError"]
        return bool(state["scheduleState"]["status"] == "RUNNING")

    wait_for_stack(webserver_ok, 60, "the webserver to read Postgres again")

    # A run can be launched again (the first attempts may fail: see the next test) and the daemon,
    # reconnected, dequeues it; its heartbeats are fresh.
    failures: list[str] = []

    def launched() -> str | None:
        try:
            return stack.launch("quick_job")
        except (DagopsError, AssertionError) as exc:
            failures.append(str(exc)[:200])
            return None

    run_id = wait_for_stack(launched, 60, "a launch after the restart", interval=1.0)
    print(f"\nlaunches refused right after the Postgres restart: {len(failures)}")
    assert wait_for_stack(
        lambda: (s := stack.run_status(run_id)) in TERMINAL and s, 120, "a run after the restart"
    ) == ("SUCCESS")

    def daemon_beating() -> bool:
        statuses = webserver.query(stack.url, DAEMON_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        beats = [s["lastHeartbeatTime"] for s in statuses if s["daemonType"] == "QUEUED_RUN_COORDINATOR"]
        return bool(beats and beats[0] and beats[0] > stopped + 1)

    wait_for_stack(daemon_beating, 90, "daemon heartbeats after the restart")


def test_first_request_after_postgres_restart_succeeds(stack: Stack) -> None:
    # The webserver has used its storages (its pooled connections are open) before Postgres restarts.
    before = stack.launch("quick_job")
    assert (
        wait_for_stack(lambda: (s := stack.run_status(before)) in TERMINAL and s, 120, "a run") == "SUCCESS"
    )
    restart_postgres(stack)
    wait_for_stack(lambda: stack.sql("SELECT 1"), 60, "Postgres to accept connections")
    run_id = stack.launch("quick_job")  # no retry: a user clicking "Launch" right now
    assert (
        wait_for_stack(lambda: (s := stack.run_status(run_id)) in TERMINAL and s, 120, "the run") == "SUCCESS"
    )

    # No run is left stuck. The previous test started the hourly schedule of slow_job (8 s): at the top of
    # the hour a run of it may be under way here, so every run is given time to end, not none.
    def stuck() -> list[Any]:
        return list(
            stack.sql(
                "SELECT run_id, status FROM runs WHERE status NOT IN ('SUCCESS', 'FAILURE', 'CANCELED')"
            )
        )

    time.sleep(3)
    wait_for_stack(lambda: stuck() == [], 60, "every run to end")


def restart_postgres(stack: Stack) -> float:
    """Stop the stack's Postgres (pg_ctl stop -m fast); the supervisor starts it again; the stop time."""
    FAULTS.append("postgres-restart")
    pg_bin = find_bin_dir()
    assert pg_bin is not None
    pg_pid = stack.component_pid("postgres")
    pg_ctl = [str(pg_bin / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(stack.config.postgres_dir)]
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_user, *pg_ctl], check=True, capture_output=True, timeout=60)
    stopped = time.time()
    wait_for_stack(
        lambda: stack.component_pid("postgres") != pg_pid and stack.sql("SELECT 1"), 90, "postgres back"
    )
    return stopped


def test_no_records_lost_and_current_never_torn(stack: Stack) -> None:
    """Every run launched in this module is in Postgres with a terminal status; `current` was never torn."""
    assert LAUNCHED_RUNS, "the fault tests launched no runs"
    stored = dict(stack.sql("SELECT run_id, status FROM runs"))
    lost = [run_id for run_id in LAUNCHED_RUNS if run_id not in stored]
    print(f"\nruns launched: {len(LAUNCHED_RUNS)}, records lost: {len(lost)}")
    assert lost == []
    assert all(stored[r] in TERMINAL for r in LAUNCHED_RUNS), {r: stored[r] for r in LAUNCHED_RUNS}
    assert stack.checker.samples > 100
    assert stack.checker.violations == []
    assert len(stack.checker.revisions) >= 4  # the sampler saw the swaps, not one tree all along


# --------------------------------------------------------------------------- concurrency (no stack)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _numbered_tree(n: int, width: int = 12) -> dict[str, str]:
    files = {f"pkg/mod_{i}.py": f"VALUE = {n * 1000 + i}\n" for i in range(width)}
    files["pkg/__init__.py"] = ""
    files["definitions.py"] = (
        "import dagster as dg\n\nfrom pkg import mod_0\n\n\n"
        f"@dg.asset\ndef rev_{n}() -> int:\n    return mod_0.VALUE\n\n\n"
        f"defs = dg.Definitions(assets=[rev_{n}])\n"
    )
    return files


def _s3_matches_manifest(s3: Any, bucket: str, location: str) -> Manifest:
    raw = s3.get_object(Bucket=bucket, Key=f"dags/{location}/{MANIFEST_NAME}")["Body"].read()
    manifest = Manifest.from_json(raw, location)
    keys = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"dags/{location}/")
        for item in page.get("Contents", [])
    }
    assert keys == {f"dags/{location}/{rel}" for rel in manifest.files} | {f"dags/{location}/{MANIFEST_NAME}"}
    for rel, item in manifest.files.items():
        body = s3.get_object(Bucket=bucket, Key=f"dags/{location}/{rel}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == item.sha256, rel
    return manifest


def test_two_publishes_at_once_leave_one_complete_manifest(moto_endpoint: str, tmp_path: Path) -> None:
    bucket, location = "race-publish", "race"
    s3 = _s3_client(moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    outcomes: list[str] = []
    for round_ in range(4):
        FAULTS.append(f"concurrent-publish-threads-{round_}")
        sources = [
            write_tree(tmp_path / f"r{round_}-{side}", _numbered_tree(round_ * 10 + side)) for side in (1, 2)
        ]
        barrier = threading.Barrier(2)

        def one(source: Path, barrier: threading.Barrier = barrier) -> str:
            client = _s3_client(moto_endpoint)
            barrier.wait()
            try:
                return publish_location(client, bucket, location, source).revision
            except DagopsError as exc:
                return f"refused: {exc}"

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(one, sources))
        won = [r for r in results if not r.startswith("refused")]
        assert won, results
        for r in results:
            if r.startswith("refused"):
                assert "another publish" in r.lower(), r
        manifest = _s3_matches_manifest(s3, bucket, location)
        assert manifest.revision in won
        outcomes.append(f"{len(won)} won")

    # Processes, the way two CI jobs would race.
    FAULTS.append("concurrent-publish-processes")
    sources = [write_tree(tmp_path / f"p-{side}", _numbered_tree(900 + side)) for side in (1, 2)]
    env = dict(
        os.environ,
        DAGSTER_S3_BUCKET=bucket,
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="dagops-local",
        AWS_SECRET_ACCESS_KEY="dagops-local",
        AWS_DEFAULT_REGION="us-east-1",
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dagops.publish", "--location", location, "--source", str(src)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in sources
    ]
    done = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, done
    for code, (_out, err) in zip(codes, done, strict=True):
        assert "Traceback" not in err
        if code:
            assert "another publish" in err.lower(), err
    _s3_matches_manifest(s3, bucket, location)
    print(f"\nconcurrent publishes: {outcomes}, processes exit codes {codes}")


def test_two_sync_agents_on_one_code_dir(moto_endpoint: str, tmp_path: Path) -> None:
    bucket, location = "race-agents", "duo"
    s3 = _s3_client(moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    code_dir = tmp_path / "code"
    source = tmp_path / "src"
    publish_location(s3, bucket, location, write_tree(source, _numbered_tree(0)))
    env = dict(
        os.environ,
        DAGSTER_S3_BUCKET=bucket,
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="dagops-local",
        AWS_SECRET_ACCESS_KEY="dagops-local",
        AWS_DEFAULT_REGION="us-east-1",
    )
    argv = [sys.executable, "-m", "dagops.runtime.sync", "run", "--location", location,
            "--code-dir", str(code_dir), "--interval", "0.3", "--no-code-server"]  # fmt: skip
    FAULTS.append("two-sync-agents-one-dir")
    logs = [tmp_path / f"agent{i}.log" for i in (1, 2)]
    agents = [
        subprocess.Popen(
            argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        for log in logs
    ]
    checker = SwapChecker(code_dir / location)
    checker.start()
    try:
        last = ""
        for n in range(1, 6):
            last = publish_location(
                s3, bucket, location, write_tree(source, _numbered_tree(n), replace=True)
            ).revision
            time.sleep(1.5)
        wait_for_stack(
            lambda: (code_dir / location / "current").resolve().name == last,
            90,
            "both agents on the last revision",
        )
        time.sleep(2)  # both agents poll a few more times
        checker.sample()
        final = Manifest.from_json((code_dir / location / "releases" / f"{last}.manifest.json").read_bytes())
        assert final.revision == last
        assert tree_matches_manifest(code_dir / location / "current", final) is None
        assert tree_matches_manifest(source, final) is None
        assert not list((code_dir / location / "releases").glob(".build-*"))
        for agent in agents:
            assert agent.poll() is None, "an agent died"
    finally:
        checker.stopping.set()
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        for agent in agents:
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
    for log in logs:
        assert "Traceback" not in log.read_text()
    assert checker.violations == []
    assert checker.samples > 50 and len(checker.revisions) >= 2
