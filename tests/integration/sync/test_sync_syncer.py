"""The sync step as a library (code server off): against a moto S3 server on loopback."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from moto_s3 import make_client
from synctrees import GOOD_TREE, tree_contents, write_tree

from dagops.manifest import Manifest
from dagops.ports import free_port
from dagops.publish import unpublish_location
from dagops.runtime.sync.layout import LocationDir
from dagops.runtime.sync.status import read_status
from dagops.runtime.sync.syncer import ABSENT, INCOMPLETE, REJECTED, SWAPPED, UNCHANGED, UNREACHABLE, Syncer

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


class Calls:
    """Records every S3 operation a client sends (name and key), through botocore's event hooks."""

    def __init__(self, s3: Any) -> None:
        self.ops: list[tuple[str, str, bool]] = []
        self.sent = 0
        s3.meta.events.register("before-call.s3", self._call)
        s3.meta.events.register("before-send.s3", self._send)

    def _call(self, model: Any, params: Any, **_: Any) -> None:
        conditional = "If-None-Match" in (params.get("headers") or {})
        self.ops.append((model.name, params.get("url_path", ""), conditional))

    def _send(self, **_: Any) -> None:
        self.sent += 1

    def reset(self) -> None:
        self.ops.clear()
        self.sent = 0


@pytest.fixture
def syncer(s3: Any, bucket: str, code_dir: Path) -> Syncer:
    lines: list[str] = []
    sync = Syncer(s3, bucket, "main", code_dir, log=lines.append)
    sync.prepare()
    return sync


def current(code_dir: Path) -> Path:
    return code_dir / "main" / "current"


def test_first_sync_serves_exactly_the_published_tree(
    publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    published = publish(source)
    result = syncer.poll()
    assert result.outcome == SWAPPED
    assert result.revision == published.revision
    assert result.downloaded == len(GOOD_TREE)
    assert tree_contents(current(code_dir)) == tree_contents(source)
    assert os.readlink(current(code_dir)) == f"releases/{published.revision}"
    status = read_status(code_dir / "main")
    assert status is not None
    assert (status.state, status.revision, status.consecutive_failures) == ("ok", published.revision, 0)
    assert status.last_change is not None


def test_idle_poll_is_one_conditional_get_and_downloads_nothing(
    s3: Any, publish: Any, source: Path, syncer: Syncer
):
    publish(source)
    assert syncer.poll().outcome == SWAPPED
    calls = Calls(s3)
    for _ in range(3):
        calls.reset()
        result = syncer.poll()
        assert result.outcome == UNCHANGED
        assert (result.downloaded, result.bytes_downloaded) == (0, 0)
        assert calls.sent == 1 == result.requests
        assert calls.ops == [("GetObject", "/dags/main/_manifest.json", True)]


def test_one_changed_file_is_the_manifest_plus_one_download(
    s3: Any, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    publish(source)
    syncer.poll()
    (source / "data" / "seed.csv").write_text("a,b\n3,4\n")
    publish(source)
    calls = Calls(s3)
    result = syncer.poll()
    assert result.outcome == SWAPPED
    assert (result.downloaded, result.linked) == (1, len(GOOD_TREE) - 1)
    assert calls.sent == 2
    assert (current(code_dir) / "data" / "seed.csv").read_text() == "a,b\n3,4\n"


def test_same_size_content_change_is_detected(publish: Any, source: Path, syncer: Syncer, code_dir: Path):
    publish(source)
    syncer.poll()
    seed = source / "data" / "seed.csv"
    before = seed.stat().st_size
    seed.write_text("a,b\n9,9\n")
    assert seed.stat().st_size == before
    os.utime(seed, (1_000_000, 1_000_000))  # an old mtime: only the content says it changed
    publish(source)
    assert syncer.poll().outcome == SWAPPED
    assert (current(code_dir) / "data" / "seed.csv").read_text() == "a,b\n9,9\n"


def test_deleted_files_disappear(publish: Any, source: Path, syncer: Syncer, code_dir: Path):
    publish(source)
    syncer.poll()
    (source / "data" / "seed.csv").unlink()
    (source / "data").rmdir()
    publish(source)
    assert syncer.poll().outcome == SWAPPED
    assert not (current(code_dir) / "data").exists()
    assert tree_contents(current(code_dir)) == tree_contents(source)


def test_broken_tree_keeps_last_good_then_recovers(
    s3: Any, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    good = publish(source)
    syncer.poll()
    good_tree = tree_contents(current(code_dir))
    write_tree(source, {"pipelines/assets.py": "def broken(:\n"})
    bad = publish(source)
    result = syncer.poll()
    assert result.outcome == REJECTED
    assert "SyntaxError: " in result.message and "(pipelines/assets.py, line 1)" in result.message
    assert tree_contents(current(code_dir)) == good_tree
    status = read_status(code_dir / "main")
    assert status is not None
    assert (status.state, status.revision, status.bad_revision) == ("error", good.revision, bad.revision)
    assert "SyntaxError" in (status.last_error or "")
    assert "\n" not in (status.last_error or "")
    assert not (code_dir / "main" / "releases" / bad.revision).exists()
    # The same bad revision is not checked again: the next poll is one 304.
    calls = Calls(s3)
    again = syncer.poll()
    assert (again.outcome, calls.sent) == (UNCHANGED, 1)
    assert read_status(code_dir / "main").state == "error"  # type: ignore[union-attr]
    # Fixing the upload recovers without a restart.
    write_tree(source, GOOD_TREE)
    (source / "data" / "extra.txt").write_text("fixed\n")
    fixed = publish(source)
    assert syncer.poll().outcome == SWAPPED
    status = read_status(code_dir / "main")
    assert status is not None
    assert (status.state, status.revision, status.bad_revision) == ("ok", fixed.revision, None)
    assert (current(code_dir) / "data" / "extra.txt").read_text() == "fixed\n"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            {"pipelines/assets.py": "import not_installed_anywhere_xyz\n"},
            "ModuleNotFoundError: No module named",
        ),
        ({"definitions.py": "import dagster as dg\nx = 1\n"}, "No Definitions, RepositoryDefinition"),
        (
            {
                "definitions.py": "import dagster as dg\n\n@dg.asset(required_resource_keys={'db'})\n"
                "def a(): ...\n\ndefs = dg.Definitions(assets=[a])\n"
            },
            "DagsterInvalidDefinitionError",
        ),
    ],
    ids=["missing-dependency", "no-definitions", "unsatisfied-resource"],
)
def test_trees_that_do_not_load_are_rejected(
    publish: Any, source: Path, syncer: Syncer, code_dir: Path, breakage: dict, expected: str
):
    write_tree(source, breakage)
    publish(source)
    result = syncer.poll()
    assert result.outcome == REJECTED
    assert expected in result.message
    assert not current(code_dir).exists()
    status = read_status(code_dir / "main")
    assert status is not None and status.state == "error" and expected in (status.last_error or "")


def test_a_broken_first_release_is_never_served(publish: Any, source: Path, syncer: Syncer, code_dir: Path):
    write_tree(source, {"pipelines/assets.py": "raise RuntimeError('boom at import')\n"})
    publish(source)
    result = syncer.poll()
    assert result.outcome == REJECTED
    assert "RuntimeError: boom at import (at pipelines/assets.py:1)" in result.message
    assert not current(code_dir).exists()
    assert read_status(code_dir / "main").state == "error"  # type: ignore[union-attr]


def test_manifest_absent_then_removed_location(
    s3: Any, bucket: str, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    result = syncer.poll()
    assert result.outcome == ABSENT
    assert "no manifest" in result.message
    assert not current(code_dir).exists()
    published = publish(source)
    assert syncer.poll().outcome == SWAPPED
    unpublish_location(s3, bucket, "main")
    result = syncer.poll()
    assert result.outcome == ABSENT
    assert published.revision[:12] in result.message  # still serving it, and says so
    assert tree_contents(current(code_dir)) == tree_contents(source)
    status = read_status(code_dir / "main")
    assert status is not None
    assert status.state == "error"
    assert status.revision == published.revision


def test_prefix_without_manifest_is_never_served(s3: Any, bucket: str, syncer: Syncer, code_dir: Path):
    """An upload caught half-way (files there, manifest not yet written) is invisible to the agent."""
    for rel, text in GOOD_TREE.items():
        s3.put_object(Bucket=bucket, Key=f"dags/main/{rel}", Body=text.encode())
    assert syncer.poll().outcome == ABSENT
    assert not current(code_dir).exists()


def test_download_not_matching_the_manifest_is_not_swapped_and_retried(
    s3: Any, bucket: str, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    published = publish(source)
    s3.put_object(Bucket=bucket, Key="dags/main/pipelines/assets.py", Body=b"# half-way through a publish\n")
    result = syncer.poll()
    assert result.outcome == INCOMPLETE
    assert "does not match" in result.message
    assert not current(code_dir).exists()
    # No release: only the partial build (its verified files kept for the retry), never served.
    assert [p.name.startswith(".build-") for p in (code_dir / "main" / "releases").iterdir()] == [True]
    publish(source)  # repairs the object (its size differs from the manifest's)
    result = syncer.poll()
    assert (result.outcome, result.revision) == (SWAPPED, published.revision)


def test_partial_build_is_dropped_when_another_agent_serves_a_newer_revision(
    s3: Any, bucket: str, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    """Two agents on one folder: the one caught mid-publish must not leave its partial build behind."""
    other = Syncer(s3, bucket, "main", code_dir)
    other.prepare()  # started beside it (a later prepare() would clean up for it)
    publish(source)
    s3.put_object(Bucket=bucket, Key="dags/main/pipelines/assets.py", Body=b"# half-way through a publish\n")
    assert syncer.poll().outcome == INCOMPLETE
    (source / "pipelines" / "extra.py").write_text("X = 1\n")
    newer = publish(source)
    assert (other.poll().outcome, other.layout.current_revision()) == (SWAPPED, newer.revision)
    assert (syncer.poll().outcome, syncer.layout.current_revision()) == (UNCHANGED, newer.revision)
    assert not [p.name for p in (code_dir / "main" / "releases").iterdir() if p.name.startswith(".build-")]


def test_s3_unreachable_then_back(bucket: str, publish: Any, source: Path, code_dir: Path):
    published = publish(source)
    port = free_port()
    offline = make_client(f"http://127.0.0.1:{port}")
    sync = Syncer(offline, bucket, "main", code_dir)
    sync.prepare()
    for attempt in (1, 2):
        result = sync.poll()
        assert result.outcome == UNREACHABLE
        status = read_status(code_dir / "main")
        assert status is not None
        assert (status.state, status.consecutive_failures) == ("error", attempt)
        assert "\n" not in (status.last_error or "")
    # The endpoint comes back (moto's backend is shared in-process, so the bucket is there).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        result = sync.poll()
    finally:
        server.stop()
    assert (result.outcome, result.revision) == (SWAPPED, published.revision)
    status = read_status(code_dir / "main")
    assert status is not None
    assert (status.state, status.consecutive_failures) == ("ok", 0)


def test_unreachable_keeps_serving_last_good(
    bucket: str, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    publish(source)
    syncer.poll()
    offline = Syncer(make_client(f"http://127.0.0.1:{free_port()}"), bucket, "main", code_dir)
    offline.prepare()
    assert offline.poll().outcome == UNREACHABLE
    assert tree_contents(current(code_dir)) == tree_contents(source)


def test_unsafe_manifest_paths_are_rejected(
    s3: Any, bucket: str, syncer: Syncer, code_dir: Path, tmp_path: Path
):
    body = {
        "format": 1,
        "location": "main",
        "entry": "definitions.py",
        "files": {
            "definitions.py": {"sha256": "0" * 64, "size": 1},
            "../../escape.py": {"sha256": "1" * 64, "size": 1},
        },
    }
    s3.put_object(Bucket=bucket, Key="dags/main/_manifest.json", Body=json.dumps(body).encode())
    result = syncer.poll()
    assert result.outcome == REJECTED
    assert "invalid manifest" in result.message
    assert not (tmp_path / "escape.py").exists()
    assert not current(code_dir).exists()


def test_restart_serves_the_release_on_disk(
    s3: Any, bucket: str, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    published = publish(source)
    syncer.poll()
    releases = code_dir / "main" / "releases"
    (releases / ".build-leftover-1-0").mkdir()  # a crash mid-build
    (releases / ("f" * 64)).mkdir()  # a tree whose install never finished
    again = Syncer(s3, bucket, "main", code_dir)
    again.prepare()
    assert again.serving == published.revision
    assert sorted(p.name for p in releases.iterdir()) == sorted(
        [published.revision, f"{published.revision}.manifest.json"]
    )
    assert again.poll().outcome == UNCHANGED


def test_old_releases_are_pruned_and_a_rollback_reuses_the_kept_tree(
    s3: Any, publish: Any, source: Path, syncer: Syncer, code_dir: Path
):
    revisions = []
    for n in range(3):
        (source / "data" / "seed.csv").write_text(f"a,b\n{n},{n}\n")
        revisions.append(publish(source).revision)
        assert syncer.poll().outcome == SWAPPED
    layout = LocationDir(code_dir, "main")
    kept = sorted(p.name for p in layout.releases.iterdir() if p.is_dir())
    assert kept == sorted(revisions[1:])
    # Publishing the previous content again: the kept release is swapped back, nothing downloaded.
    (source / "data" / "seed.csv").write_text("a,b\n1,1\n")
    assert publish(source).revision == revisions[1]
    calls = Calls(s3)
    result = syncer.poll()
    assert (result.outcome, result.revision, result.downloaded, calls.sent) == (SWAPPED, revisions[1], 0, 1)


def test_swap_is_atomic_for_readers(tmp_path: Path):
    """A reader opening current/<file> during many swaps never misses a file nor sees a mixed tree."""
    layout = LocationDir(tmp_path / "code", "main")
    manifests = []
    for n in range(2):
        src = write_tree(tmp_path / f"v{n}", {"definitions.py": f"V = {n}\n", "b.py": f"W = {n}\n"})
        from dagops.manifest import build

        manifest, _ = build("main", src)
        build_dir = layout.new_build_dir(manifest.revision)
        write_tree(build_dir, {"definitions.py": f"V = {n}\n", "b.py": f"W = {n}\n"})
        layout.install(build_dir, manifest)
        manifests.append(manifest)
    layout.swap(manifests[0].revision)
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                tree = layout.current.resolve(strict=True)
                first = (tree / "definitions.py").read_text()
                second = (tree / "b.py").read_text()
            except OSError as exc:
                problems.append(repr(exc))
                continue
            if first[-2] != second[-2]:
                problems.append(f"mixed tree: {first!r} {second!r}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for n in range(400):
        layout.swap(manifests[n % 2].revision)
    stop.set()
    for t in threads:
        t.join()
    assert problems == []
    assert (layout.current / "definitions.py").read_text() == "V = 1\n"


def test_two_agents_on_one_folder_take_turns(
    s3: Any, bucket: str, publish: Any, source: Path, code_dir: Path
):
    published = publish(source)
    agents = [Syncer(s3, bucket, "main", code_dir) for _ in range(2)]
    for agent in agents:
        agent.prepare()
    results: list[Any] = []
    threads = [threading.Thread(target=lambda a=a: results.append(a.poll())) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.outcome for r in results} <= {SWAPPED}
    assert tree_contents(current(code_dir)) == tree_contents(source)
    assert LocationDir(code_dir, "main").current_revision() == published.revision


def test_import_check_times_out(publish: Any, source: Path, s3: Any, bucket: str, code_dir: Path):
    write_tree(source, {"pipelines/assets.py": "import time\ntime.sleep(60)\n"})
    publish(source)
    sync = Syncer(s3, bucket, "main", code_dir, check_timeout=3)
    sync.prepare()
    result = sync.poll()
    assert result.outcome == REJECTED
    assert "timed out" in result.message


def test_manifest_round_trip_is_what_the_agent_reads(publish: Any, source: Path, s3: Any, bucket: str):
    published = publish(source)
    raw = s3.get_object(Bucket=bucket, Key="dags/main/_manifest.json")["Body"].read()
    manifest = Manifest.from_json(raw, "main")
    assert manifest.revision == published.revision
