"""The manifest: what is published, the revision, and what a sync agent refuses to trust."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dagops.errors import DagopsError
from dagops.manifest import Manifest, build, check_relpath, revision_of, scan


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_scan_skips_caches_vcs_venvs_and_hidden_files(tmp_path: Path):
    root = _tree(
        tmp_path,
        {
            "definitions.py": "x",
            "pkg/mod.py": "y",
            "pkg/__pycache__/mod.cpython-311.pyc": "c",
            "pkg/stale.pyc": "c",
            ".git/HEAD": "ref",
            ".venv/bin/python": "p",
            ".pytest_cache/v": "v",
            ".hidden/secret": "s",
            ".env": "SECRET=1",
            ".dbtignore": "target/",
            "dbt/models/m.sql": "select 1",
        },
    )
    assert sorted(scan(root)) == [".dbtignore", "dbt/models/m.sql", "definitions.py", "pkg/mod.py"]


def test_revision_is_the_sha256_of_the_canonical_json_of_sorted_pairs(tmp_path: Path):
    texts = {"b.py": "2", "a/c.py": "3", "definitions.py": "1"}
    root = _tree(tmp_path, texts)
    manifest, _ = build("main", root)
    pairs = [[rel, hashlib.sha256(text.encode()).hexdigest()] for rel, text in sorted(texts.items())]
    canonical = json.dumps(pairs, separators=(",", ":")).encode()
    assert manifest.revision == hashlib.sha256(canonical).hexdigest()
    assert manifest.revision == revision_of(manifest.files)


def test_revision_changes_with_content_not_with_mtime(tmp_path: Path):
    root = _tree(tmp_path, {"definitions.py": "abc"})
    first, _ = build("main", root)
    (root / "definitions.py").write_text("abc")
    assert build("main", root)[0].revision == first.revision
    (root / "definitions.py").write_text("abd")  # same size, other content
    assert build("main", root)[0].revision != first.revision


def test_json_round_trip_follows_the_readme_contract(tmp_path: Path):
    root = _tree(tmp_path, {"definitions.py": "x = 1\n", "lib/a.py": ""})
    manifest = build("main", root)[0].stamped()
    data = json.loads(manifest.to_json())
    assert set(data) == {"format", "location", "entry", "revision", "created_at", "files"}
    assert data["format"] == 2 and data["location"] == "main" and data["entry"] == "definitions.py"
    assert data["files"]["lib/a.py"] == {"sha256": hashlib.sha256(b"").hexdigest(), "size": 0}
    assert data["created_at"].endswith("Z")
    assert Manifest.from_json(manifest.to_json(), "main") == manifest


@pytest.mark.parametrize(
    "rel",
    [
        "../x.py",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "./a",
        "a\\b",
        "",
        "_manifest.json",
        "_publish.lock",
        "a/./b",
    ],
)
def test_unsafe_paths_are_refused(rel: str):
    with pytest.raises(DagopsError):
        check_relpath(rel)


def _valid() -> dict:
    files = {"definitions.py": {"sha256": "a" * 64, "size": 3}}
    return {
        "format": 1,
        "location": "main",
        "entry": "definitions.py",
        "revision": hashlib.sha256(("definitions.py:" + "a" * 64).encode()).hexdigest(),
        "created_at": "2026-01-01T00:00:00Z",
        "files": files,
    }


def test_a_valid_manifest_parses():
    assert Manifest.from_json(json.dumps(_valid())).entry == "definitions.py"


def test_a_format_1_manifest_is_read_and_converted():
    """Manifests written by older versions keep serving: checked by their own rule, converted to format 2."""
    manifest = Manifest.from_json(json.dumps(_valid()), "main")
    assert manifest.revision == revision_of(manifest.files)
    assert json.loads(manifest.to_json())["format"] == 2
    assert Manifest.from_json(manifest.to_json(), "main") == manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 3}, "format 2"),
        ({"format": True}, "format 2"),
        ({"location": "Other Name"}, "Invalid code location name"),
        ({"location": "other"}, "expected 'main'"),
        ({"entry": "missing.py"}, "entry file"),
        ({"revision": "0" * 64}, "revision does not match"),
        ({"files": {}}, "lists no files"),
        ({"files": {"definitions.py": {"sha256": "xyz", "size": 3}}}, "needs a sha256"),
        ({"files": {"definitions.py": {"sha256": "a" * 64, "size": -1}}}, "needs a sha256"),
    ],
)
def test_inconsistent_manifests_are_refused(change: dict, message: str):
    data = _valid() | change
    with pytest.raises(DagopsError, match=message):
        Manifest.from_json(json.dumps(data), "main")


def test_not_json_is_refused():
    with pytest.raises(DagopsError, match="not valid JSON"):
        Manifest.from_json(b"{nope")


def test_build_refuses_bad_input(tmp_path: Path):
    with pytest.raises(DagopsError, match="Invalid code location name"):
        build("Bad Name", tmp_path)
    with pytest.raises(DagopsError, match="does not exist"):
        build("main", tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "__pycache__").mkdir(parents=True)
    (empty / "__pycache__" / "x.pyc").write_text("c")
    with pytest.raises(DagopsError, match="has no files"):
        build("main", empty)
    _tree(tmp_path / "src", {"other.py": "x"})
    with pytest.raises(DagopsError, match=r"entry file 'definitions\.py'"):
        build("main", tmp_path / "src")
    with pytest.raises(DagopsError, match="Unsafe"):
        build("main", tmp_path / "src", entry="../other.py")
