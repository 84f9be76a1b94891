"""`invoke dev --mode compose` end to end, as a user drives it, on a copy of the repository's compose
stack and code locations (DAGOPS_ROOT): Postgres, the S3 endpoint, the publisher, the sync agent in the
code-location container, webserver and daemon from the project image; then `invoke dags.deploy` makes a
change visible, a job run reaches SUCCESS and is in Postgres, the foreground `invoke dev --mode compose`
(attached to the running stack) publishes saved files by itself, and `dev-logs`, `stop` and `dev-reset`
work.

Ports are free ones (DAGOPS_DEV_UI_PORT / DAGOPS_DEV_S3_PORT), the compose project name is unique
(COMPOSE_PROJECT_NAME) and the images come from DAGOPS_IMAGE / DAGOPS_POSTGRES_IMAGE / DAGOPS_MOTO_IMAGE.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagsterui import FRESH_MODULE, asset_keys, finished_status, launch_job
from invoking import run_invoke
from polling import wait_for
from stacks import MOTO_IMAGE, POSTGRES_IMAGE, project_image, require_engine, unique

from dagops import webserver
from dagops.operator.devstack import compose
from dagops.operator.devstack.config import free_port

REPO = Path(__file__).resolve().parents[2]
SAVED_MODULE = """
import dagster as dg


@dg.asset(group_name="saved")
def saved_asset() -> int:
    return 2


defs = dg.Definitions(assets=[saved_asset])
"""


@dataclass
class ComposeStack:
    root: Path
    env: dict[str, str]
    url: str

    def invoke(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        proc = run_invoke(*args, env=self.env, cwd=None, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"invoke {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def compose(self, *args: str) -> str:
        argv = ["docker", "compose", "-f", str(self.root / "compose" / "docker-compose.yml"), *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def sql(self, query: str) -> str:
        return self.compose("exec", "-T", "postgres", "psql", "-U", "dagster", "-d", "dagster", "-tAc", query)

    def volumes(self) -> set[str]:
        """The compose project's volumes, by their name in the compose file."""
        project = self.env["COMPOSE_PROJECT_NAME"]
        label = f"label=com.docker.compose.project={project}"
        name = '{{.Label "com.docker.compose.volume"}}'
        argv = ["docker", "volume", "ls", "--filter", label, "--format", name]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        return set(proc.stdout.split())

    def main_loaded(self) -> bool:
        if webserver.server_info(self.url) is None:
            return False
        found = webserver.locations(self.url)
        return found.get("main", {}).get("loadStatus") == "LOADED" and not found["main"]["error"]

    def assets(self) -> set[str]:
        return asset_keys(self.url)

    def loaded_assets(self) -> set[str] | None:
        """The UI's assets while main is loaded without error, else None (also while it does not answer)."""
        try:
            return self.assets() if self.main_loaded() else None
        except Exception:
            return None


def watch_lines(output: Path) -> list[str]:
    """The watcher's lines about main in the foreground `invoke dev`'s output, one per publish."""
    text = output.read_text(errors="replace") if output.exists() else ""
    return [line for line in text.splitlines() if line.startswith("[watch] code main: ")]


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    require_engine(POSTGRES_IMAGE, MOTO_IMAGE, compose=True)
    image = project_image(request)
    require_engine(image)
    root = tmp_path_factory.mktemp("compose-repo")
    shutil.copytree(REPO / "compose", root / "compose")
    (root / "code_locations").mkdir()
    shutil.copy2(REPO / "code_locations" / "locations.yaml", root / "code_locations" / "locations.yaml")
    shutil.copytree(
        REPO / "code_locations" / "main", root / "code_locations" / "main",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )  # fmt: skip
    # The image's user (uid 10001) reads the checkout through the publisher's bind mount, as it reads a
    # user's clone (pytest makes its temporary folders private to their owner).
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    ui_port, s3_port = free_port(), free_port()
    env = {
        **os.environ,
        "DAGOPS_ROOT": str(root),
        "DAGOPS_STATE_DIR": str(root / ".dagops"),
        "DAGOPS_DEV_UI_PORT": str(ui_port),
        "DAGOPS_DEV_S3_PORT": str(s3_port),
        "COMPOSE_PROJECT_NAME": unique("compose"),
        "DAGOPS_IMAGE": image,
        "DAGOPS_POSTGRES_IMAGE": POSTGRES_IMAGE,
        "DAGOPS_MOTO_IMAGE": MOTO_IMAGE,
    }
    for name in ("AWS_ENDPOINT_URL", "DAGSTER_S3_BUCKET"):  # dags.deploy must find the stack's own
        env.pop(name, None)
    s = ComposeStack(root=root, env=env, url=f"http://127.0.0.1:{ui_port}")
    try:
        yield s
    finally:
        subprocess.run(
            ["docker", "compose", "-f", str(root / "compose" / "docker-compose.yml"), "down", "--volumes"],
            env=env, capture_output=True, timeout=180, check=False,
        )  # fmt: skip


def test_compose_stack_end_to_end(stack: ComposeStack) -> None:
    started = time.monotonic()
    up = stack.invoke("dev", "--mode", "compose", "--detach")
    assert stack.url in up.stdout
    # stop, dev-logs and dev-reset act on the stack recorded here, not on a guess from `docker info`.
    recorded = stack.root / ".dagops" / compose.STARTED
    assert recorded.is_file()
    wait_for(stack.main_loaded, 240, "main LOADED in the compose stack", interval=1.0)
    ready = time.monotonic() - started
    print(f"\n[compose] `invoke dev --mode compose` to a UI with main loaded: {ready:.0f} s")
    assert {"raw_numbers", "number_summary"} <= stack.assets()
    # Every long-running service is healthy or running; the one-shot ones finished with 0.
    states = stack.compose("ps", "--all", "--format", "{{.Service}} {{.State}} {{.Health}} {{.ExitCode}}")
    rows = {line.split()[0]: line.split()[1:] for line in states.splitlines()}
    for service in ("postgres", "s3", "code-location-main", "webserver"):
        assert rows[service][:2] == ["running", "healthy"], (service, rows[service])
    assert rows["daemon"][0] == "running"
    for service in ("create-bucket", "publisher"):
        assert rows[service][0] == "exited" and rows[service][-1] == "0", (service, rows[service])

    # A change published from the host reaches the code server through S3 and the sync agent.
    (stack.root / "code_locations" / "main" / "pipelines" / "fresh.py").write_text(FRESH_MODULE)
    deployed = stack.invoke("dags.deploy")
    assert "main" in deployed.stdout
    wait_for(lambda: "fresh_asset" in stack.assets(), 120, "fresh_asset in the UI", interval=1.0)

    # A job run, launched through the UI's API, succeeds and is stored in Postgres.
    launched = launch_job(stack.url, "main", "numbers_job")
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert (
        wait_for(lambda: finished_status(stack.url, run_id), 180, f"run {run_id}", interval=1.0) == "SUCCESS"
    )
    assert (
        stack.sql(f"SELECT status, pipeline_name FROM runs WHERE run_id = '{run_id}'")
        == "SUCCESS|numbers_job"
    )

    # dev-logs: one service's log, and one clear sentence for a service that does not exist.
    logs = stack.invoke("dev-logs", "--component", "code-location-main", "--lines", "200")
    assert "code-location-main" in logs.stdout and "main" in logs.stdout
    bad = stack.invoke("dev-logs", "--component", "../etc", check=False)
    assert bad.returncode != 0
    assert "No log for component '../etc'" in bad.stderr and "Traceback" not in bad.stderr

    # The foreground `invoke dev --mode compose` attaches to the running stack and watches the code: a saved
    # pipeline reaches the UI, a syntax error is reported while the last good code serves, and a deleted
    # pipeline leaves the UI; no other command runs.
    watch_started = time.monotonic()
    output = stack.root.parent / "foreground-dev.log"
    with output.open("w") as sink:
        foreground = subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), "dev", "--mode", "compose"],
            env=stack.env, stdout=sink, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "[watch] watching" in output.read_text(), 60, "the watcher", interval=1.0)
        module = stack.root / "code_locations" / "main" / "pipelines" / "saved.py"
        saved = time.monotonic()
        module.write_text(SAVED_MODULE)
        good = wait_for(
            lambda: (a := stack.loaded_assets()) and "saved_asset" in a and a,
            180,
            "saved_asset in the UI",
            interval=1.0,
        )
        visible = time.monotonic() - saved
        served = wait_for(lambda: watch_lines(output), 60, "the watcher's line", interval=1.0)
        assert len(served) == 1 and "serving" in served[0], served

        module.write_text(SAVED_MODULE + "\ndef broken(:\n")
        rejected = wait_for(lambda: watch_lines(output)[1:], 180, "the rejection", interval=1.0)
        assert "rejected" in rejected[0] and "SyntaxError" in rejected[0], rejected
        assert "still serving" in rejected[0], rejected
        assert stack.loaded_assets() == good  # the last good code keeps serving
        # dags.status reads the agent's report through the stack's S3 (its status file is in the container).
        status = stack.invoke("dags.status").stdout
        assert "state         serving" in status and "last error    revision" in status, status
        assert "SyntaxError" in status and "last publish  " in status and "rejected" in status, status

        module.unlink()
        gone = wait_for(lambda: watch_lines(output)[2:], 180, "the deletion's line", interval=1.0)
        assert "serving" in gone[0], gone
        assert "saved_asset" not in (stack.loaded_assets() or {"saved_asset"})
    finally:
        os.killpg(foreground.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            foreground.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(foreground.pid, signal.SIGKILL)
            foreground.wait()
    print(
        f"[compose] foreground watch: save -> visible {visible:.1f} s; "
        f"watch part {time.monotonic() - watch_started:.0f} s"
    )

    # stop: every container goes, the database volume stays.
    stack.invoke("stop")
    assert stack.compose("ps", "--all", "--quiet") == ""
    assert not recorded.exists()
    assert stack.volumes() == {"postgres-data", "code-main"}
    # dev-reset: the volumes go (the run with them) and the stack comes back with main loaded.
    stack.invoke("dev-reset", "--mode", "compose", "--detach")
    wait_for(stack.main_loaded, 240, "main LOADED after dev-reset", interval=1.0)
    assert stack.sql("SELECT count(*) FROM runs") == "0"
    assert "fresh_asset" in stack.assets()  # the stack republished the working tree, fresh.py included
    stack.invoke("stop")
    assert stack.compose("ps", "--all", "--quiet") == ""
