"""Save and see: the real local stack publishes a saved code location, and deploys say how they ended.

One stack per module on a copy of the project (``DAGOPS_ROOT``): code location ``watched`` lives in
code_locations/ (the stack publishes it when a file is saved); ``manual`` is registered from a folder
outside code_locations/, as an external repository would be, so only `invoke dags.deploy` publishes it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagsterui import served_asset_keys
from invoking import run_invoke
from polling import wait_for

from dagops.operator.devstack.postgres import PostgresDatabase

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Generous: a publish costs an import check and a code-server start, slow on a loaded shared machine.
UI_WAIT = 300
LOCATIONS_YAML = """locations:
- name: watched
  source: code_locations/watched
  entry: definitions.py
- name: manual
  source: elsewhere/manual
  entry: definitions.py
"""


def asset_module(*names: str) -> str:
    body = "".join(f"\n\n@dg.asset(group_name='watch')\ndef {n}() -> int:\n    return 1\n" for n in names)
    return f"import dagster as dg\n{body}\n\ndefs = dg.Definitions(assets=[{', '.join(names)}])\n"


def assets(stack: Any, location: str) -> set[str] | None:
    """Asset keys the webserver shows for ``location``, or None while it is not loaded without error."""
    return served_asset_keys(stack.url, location)


def publish_lines(stack: Any, location: str) -> list[str]:
    """The watcher's lines in the supervisor's log, one per publish (and one per publish that failed)."""
    log = stack.config.logs_dir / "supervisor.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if f"code {location}: " in line]


def invoke(stack: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return run_invoke(*args, env=stack.env, timeout=400)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "tests", "conftest.py")
    for dest in (root / "code_locations" / "watched", root / "elsewhere" / "manual"):
        shutil.copytree(REPO / "code_locations" / "main", dest, ignore=ignore)
    shutil.copytree(REPO / "code_locations" / "_template", root / "code_locations" / "_template")
    (root / "code_locations" / "locations.yaml").write_text(LOCATIONS_YAML)
    return root


@pytest.fixture(scope="module")
def watched_stack(
    postgres: PostgresDatabase,
    moto_endpoint: str,
    project: Path,
    tmp_path_factory: pytest.TempPathFactory,
    stack_starter: Any,
) -> Iterator[Any]:
    extra = {"DAGOPS_ROOT": str(project), "DAGOPS_DEV_WATCH": "true"}
    state = tmp_path_factory.mktemp("watched-state")
    with stack_starter(postgres, moto_endpoint, state, extra) as stack:
        wait_for(
            lambda: assets(stack, "watched") and assets(stack, "manual"), UI_WAIT, "both locations to load"
        )
        yield stack


def test_a_saved_pipeline_appears_in_the_ui_and_its_deletion_removes_it(
    watched_stack: Any, project: Path, figures: dict[str, str]
) -> None:
    module = project / "code_locations" / "watched" / "pipelines" / "saved_here.py"
    saved = time.monotonic()
    module.write_text(asset_module("saved_asset"))
    wait_for(
        lambda: "saved_asset" in (assets(watched_stack, "watched") or set()), UI_WAIT, "saved_asset in the UI"
    )
    figures["save -> visible (one save, integration)"] = f"{time.monotonic() - saved:.2f} s"
    line = wait_for(lambda: publish_lines(watched_stack, "watched"), 30, "the watcher's line")[-1]
    assert "serving" in line, line

    count = len(publish_lines(watched_stack, "watched"))
    module.unlink()
    wait_for(
        lambda: (a := assets(watched_stack, "watched")) is not None and "saved_asset" not in a and a,
        UI_WAIT,
        "saved_asset to leave the UI",
    )
    # The deletion's own line (written once the agent reported), so the next test counts from here.
    wait_for(lambda: len(publish_lines(watched_stack, "watched")) > count, 60, "the deletion's line")


def test_a_burst_of_50_writes_publishes_at_most_twice(watched_stack: Any, project: Path) -> None:
    module = project / "code_locations" / "watched" / "pipelines" / "burst.py"
    before = len(publish_lines(watched_stack, "watched"))
    try:
        for i in range(50):  # an editor's autosave, a formatter, a checkout: many writes in a short time
            module.write_text(asset_module(f"burst_{i}"))
            time.sleep(0.005)
        wait_for(lambda: "burst_49" in (assets(watched_stack, "watched") or set()), UI_WAIT, "burst_49")
        time.sleep(3)  # anything still pending would publish now
        lines = publish_lines(watched_stack, "watched")[before:]
        assert 1 <= len(lines) <= 2, lines
        assert "burst_0" not in (assets(watched_stack, "watched") or set())
    finally:
        module.unlink(missing_ok=True)
    wait_for(
        lambda: "burst_49" not in (assets(watched_stack, "watched") or {"burst_49"}), UI_WAIT, "burst gone"
    )


def test_a_syntax_error_is_reported_and_the_last_good_code_keeps_serving(
    watched_stack: Any, project: Path
) -> None:
    module = project / "code_locations" / "watched" / "pipelines" / "good_then_bad.py"
    try:
        module.write_text(asset_module("good_asset"))
        before = wait_for(
            lambda: (a := assets(watched_stack, "watched")) and "good_asset" in a and a, UI_WAIT, "good_asset"
        )
        count = len(publish_lines(watched_stack, "watched"))
        module.write_text(module.read_text() + "\ndef broken(:\n")

        def rejected() -> list[str]:
            return [x for x in publish_lines(watched_stack, "watched")[count:] if "rejected" in x]

        line = wait_for(rejected, UI_WAIT, "the watcher's line about the rejection")[-1]
        assert "SyntaxError" in line and "still serving" in line, line
        assert assets(watched_stack, "watched") == before  # still the last good code
        status = invoke(watched_stack, "dags.status", "--location", "watched")
        assert status.returncode == 0, status.stderr
        assert "SyntaxError" in status.stdout and "last publish" in status.stdout, status.stdout
    finally:
        module.unlink(missing_ok=True)
    wait_for(
        lambda: "good_asset" not in (assets(watched_stack, "watched") or {"good_asset"}), UI_WAIT, "cleanup"
    )


def test_dags_deploy_waits_until_served_and_fails_on_a_rejected_change(
    watched_stack: Any, project: Path
) -> None:
    # `manual` is not under code_locations/: only `invoke dags.deploy` publishes it.
    module = project / "elsewhere" / "manual" / "pipelines" / "deployed.py"
    try:
        module.write_text(asset_module("deployed_asset"))
        done = invoke(watched_stack, "dags.deploy", "--location", "manual", "--timeout", str(UI_WAIT))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "manual: serving" in done.stdout and "deployed: every agent serves" in done.stdout, done.stdout
        # The agent reported after the webserver reloaded the location: the asset is there (the GraphQL
        # answer itself may take a moment on a loaded machine).
        wait_for(lambda: "deployed_asset" in (assets(watched_stack, "manual") or set()), 30, "deployed_asset")

        module.write_text(module.read_text() + "\ndef broken(:\n")
        rejected = invoke(watched_stack, "dags.deploy", "--location", "manual", "--timeout", str(UI_WAIT))
        assert rejected.returncode == 1, rejected.stdout + rejected.stderr
        assert "SyntaxError" in rejected.stderr and "Traceback" not in rejected.stderr, rejected.stderr
        assert "deployed_asset" in (assets(watched_stack, "manual") or set())
    finally:
        module.unlink(missing_ok=True)
    again = invoke(watched_stack, "dags.deploy", "--location", "manual", "--timeout", str(UI_WAIT))
    assert again.returncode == 0, again.stdout + again.stderr
    unchanged = invoke(watched_stack, "dags.deploy", "--location", "manual")
    assert unchanged.returncode == 0 and "waiting" not in unchanged.stdout, unchanged.stdout


def test_create_says_the_running_stack_serves_the_new_pipeline(watched_stack: Any, project: Path) -> None:
    done = invoke(watched_stack, "create", "--name", "created_here", "--location", "watched")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in the running stack now" in done.stdout and "serving" in done.stdout, done.stdout
    assert "created_here" in (assets(watched_stack, "watched") or set())
