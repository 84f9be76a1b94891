"""operator.code_watch without a stack: which saves publish what, and how a burst of writes is batched."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dagops import registry
from dagops.errors import DagopsError
from dagops.operator.code_watch import CodeWatcher, own_locations, read_records, touched
from dagops.operator.devstack.config import DevConfig

REGISTRY = """locations:
- name: main
  source: code_locations/main
- name: ext
  source: repos/ext
  url: https://example.com/ext.git
  ref: main
  commit: 0123456789abcdef0123456789abcdef01234567
"""


@dataclass
class Published:
    location: str
    revision: str
    manifest_written: bool = True
    uploaded: int = 1
    deleted: int = 0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "code_locations" / "main" / "pipelines").mkdir(parents=True)
    (tmp_path / "repos" / "ext").mkdir(parents=True)
    (tmp_path / "code_locations" / "locations.yaml").write_text(REGISTRY)
    return tmp_path


def test_only_the_projects_own_locations_are_watched(project: Path) -> None:
    assert [loc.name for loc in own_locations(project)] == ["main"]
    main_file = project / "code_locations" / "main" / "pipelines" / "a.py"
    assert [loc.name for loc in touched(project, [str(main_file)])] == ["main"]
    assert touched(project, [str(project / "repos" / "ext" / "x.py")]) == []  # pinned: repo.update
    assert touched(project, [str(project / "code_locations" / "locations.yaml")]) == []  # registry watcher's


def _watcher(
    project: Path, published: list[str], outcome: str = "serving abc"
) -> tuple[CodeWatcher, list[str]]:
    said: list[str] = []

    def publish(loc: registry.Location) -> Published:
        published.append(loc.name)
        return Published(loc.name, f"rev{len(published)}")

    watcher = CodeWatcher(
        root=project,
        run_dir=project / "run",
        publish=publish,
        outcome=lambda loc, rev: outcome,
        say=said.append,
    )
    return watcher, said


def test_one_line_per_publish_kept_for_dags_status(project: Path) -> None:
    published: list[str] = []
    watcher, said = _watcher(project, published, outcome="rejected rev1: SyntaxError: invalid syntax")
    path = project / "code_locations" / "main" / "pipelines" / "a.py"
    lines = watcher.handle([str(path), str(path)])
    assert published == ["main"] and len(said) == 1 == len(lines)
    assert said[0].startswith("code main: rejected rev1: SyntaxError")
    assert read_records(project / "run")["main"]["line"] == said[0]


def test_a_save_with_unchanged_content_says_nothing(project: Path) -> None:
    said: list[str] = []
    watcher = CodeWatcher(
        root=project,
        run_dir=project / "run",
        publish=lambda loc: Published(loc.name, "same", manifest_written=False),
        outcome=lambda loc, rev: "serving same",
        say=said.append,
    )
    saved = [str(project / "code_locations" / "main" / "definitions.py")]
    # Saved before the watch began and published by the stack itself: nothing to say.
    assert watcher.handle(saved, catch_up=True) == []
    assert watcher.handle(saved) == []
    assert said == []


def test_a_save_that_another_publisher_wrote_first_is_still_reported(project: Path) -> None:
    # The compose stack's one-shot publisher (re-run when `invoke dev` attaches) or a `dags.deploy` in
    # another terminal can publish the saved content first: the watcher's own publish then writes nothing,
    # yet the save's outcome (here: a syntax error) is what the user waits for.
    revisions = iter([("good", True), ("broken", False), ("broken", False)])
    said: list[str] = []

    def publish(loc: registry.Location) -> Published:
        revision, written = next(revisions)
        return Published(loc.name, revision, manifest_written=written)

    watcher = CodeWatcher(root=project, run_dir=project / "run", publish=publish,
                          outcome=lambda loc, rev: f"outcome of {rev}", say=said.append)  # fmt: skip
    saved = [str(project / "code_locations" / "main" / "pipelines" / "a.py")]
    watcher.handle(saved)
    watcher.handle(saved)
    watcher.handle(saved)  # saved again, unchanged: already reported
    assert [line.split(" [")[0] for line in said] == [
        "code main: outcome of good",
        "code main: outcome of broken",
    ]
    assert watcher.publishes == 1


def test_a_bad_registry_is_one_line_not_a_crash(project: Path) -> None:
    (project / "code_locations" / "locations.yaml").write_text("locations: [")
    watcher, said = _watcher(project, [])
    watcher.handle([str(project / "code_locations" / "main" / "a.py")])
    assert len(said) == 1 and said[0].startswith("code: not published")


def test_a_burst_of_50_writes_is_at_most_two_batches_and_an_idle_tree_none(project: Path) -> None:
    batches: list[set[str]] = []

    class Recording(CodeWatcher):
        def handle(self, paths: Any, catch_up: bool = False) -> list[str]:
            batches.append(set(paths))
            return []

    stop = threading.Event()
    untouched = project / "code_locations" / "main" / "pipelines" / "old.py"
    untouched.write_text("x = 0\n")
    os.utime(untouched, (1_000_000, 1_000_000))
    saved_early = project / "code_locations" / "main" / "pipelines" / "early.py"
    saved_early.write_text("x = 1\n")  # saved after the stack's publish, before the watch began
    watcher = Recording(root=project, run_dir=project / "run", publish=lambda loc: None, outcome=None,
                        say=lambda line: None, since=time.time() - 5)  # fmt: skip
    thread = watcher.start(stop)
    try:
        deadline = time.monotonic() + 15
        while not batches and time.monotonic() < deadline:
            time.sleep(0.05)
        # The first batch, once the inotify watch is in place: what was saved before the watch began.
        assert batches == [{str(saved_early)}]
        batches.clear()
        target = project / "code_locations" / "main" / "pipelines" / "burst.py"
        for i in range(50):
            target.write_text(f"x = {i}\n")
            time.sleep(0.002)
        deadline = time.monotonic() + 10
        while not batches and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)
        # One batch when the writes come faster than STEP_MS apart; a loaded machine may split it once.
        assert 1 <= len(batches) <= 2, batches
        assert all(batch == {str(target)} for batch in batches)
        idle_since = len(batches)
        time.sleep(1.5)
        assert len(batches) == idle_since  # nothing changes, nothing happens
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("0", False), ("yes", True), ("on", True)])
def test_dev_watch_setting(raw: str, expected: bool) -> None:
    assert DevConfig.resolve({}, environ={"DAGOPS_DEV_WATCH": raw}).watch is expected
    assert DevConfig.resolve({"watch": False}, environ={}).watch is False
    assert DevConfig.resolve({}, environ={}).watch is True


def test_dev_watch_setting_refuses_other_words() -> None:
    with pytest.raises(DagopsError, match=r"dev\.watch"):
        DevConfig.resolve({}, environ={"DAGOPS_DEV_WATCH": "sometimes"})


def test_create_without_a_running_stack_says_how_to_see_the_pipeline(tmp_path: Path) -> None:
    from dagops.operator.tasks.dev import _next_step

    config = DevConfig.resolve({}, environ={}, state_dir=str(tmp_path / "state"))
    assert (
        _next_step(config, "main")
        == "next: `invoke dev` starts the local stack with it (the UI shows its assets)"
    )


def test_a_saved_registry_tells_the_registry_watcher_at_once(project: Path) -> None:
    told: list[bool] = []
    watcher = CodeWatcher(root=project, run_dir=project / "run", publish=lambda loc: None, outcome=None,
                          say=lambda line: None, on_registry=lambda: told.append(True))  # fmt: skip
    assert watcher.handle([str(project / "code_locations" / "locations.yaml")]) == []
    assert told == [True]


def test_a_publish_that_fails_once_is_tried_again_before_it_is_reported(project: Path) -> None:
    attempts: list[str] = []

    def publish(loc: registry.Location) -> Published:
        attempts.append(loc.name)
        if len(attempts) == 1:
            raise DagopsError("pipelines/a.py changed while it was being published; publish again.")
        return Published(loc.name, "rev")

    said: list[str] = []
    watcher = CodeWatcher(root=project, run_dir=project / "run", publish=publish,
                          outcome=lambda loc, rev: "serving rev", say=said.append)  # fmt: skip
    watcher.handle([str(project / "code_locations" / "main" / "pipelines" / "a.py")])
    assert attempts == ["main", "main"]
    assert said == [said[0]] and said[0].startswith("code main: serving rev")


def test_saved_after_ignores_bytecode(tmp_path: Path) -> None:
    from dagops.operator.code_watch import _saved_after

    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-312.pyc").write_bytes(b"x")
    (tmp_path / "a.py").write_text("x = 1\n")
    os.utime(tmp_path / "a.py", (1_000_000, 1_000_000))
    assert not _saved_after(tmp_path, 2_000_000)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert _saved_after(tmp_path, 2_000_000)
