"""The manifest of a published code location: which files, with which content, make one revision.

``dags/<location>/_manifest.json`` is written last by every publish and is the only thing a sync agent
trusts. Its format (README, "Contracts between the parts")::

    {"format": 1, "location": "main", "entry": "definitions.py", "revision": "<sha256>",
     "created_at": "...", "files": {"<relpath>": {"sha256": "<hex>", "size": <int>}}}

``revision`` is the sha256 of the sorted ``relpath:sha256`` lines (joined by newlines), so it changes
exactly when the content of some file, or the set of files, changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from dagops.errors import DagopsError
from dagops.names import validate_location_name

FORMAT = 1
MANIFEST_NAME = "_manifest.json"
LOCK_NAME = "_publish.lock"  # the publish lease, beside the manifest (dagops.publish)
RESERVED_NAMES = frozenset({MANIFEST_NAME, LOCK_NAME})
# Never part of a published tree: caches, virtualenvs, VCS metadata.
SKIPPED_DIRS = frozenset(
    {"__pycache__", ".git", ".venv", "venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox"}
)
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Hidden files are skipped (editor and OS litter, local .env secrets) except these, which tools read.
KEPT_HIDDEN = frozenset({".dbtignore", ".sqlfluff"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def revision_of(files: dict[str, FileEntry]) -> str:
    """The revision of a set of files: sha256 of the sorted ``relpath:sha256`` lines."""
    lines = "\n".join(f"{rel}:{files[rel].sha256}" for rel in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_relpath(rel: str) -> str:
    """Return ``rel`` if it is a safe relative POSIX path (no '..', not absolute), else raise."""
    pure = PurePosixPath(rel)
    if (
        not rel
        or "\\" in rel
        or "\x00" in rel
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in rel.split("/"))
        or rel in RESERVED_NAMES
    ):
        raise DagopsError(
            f"Unsafe or reserved file path {rel!r} in a code location "
            f"(relative, no '.' or '..' parts, not {' or '.join(sorted(RESERVED_NAMES))})."
        )
    return rel


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    location: str
    entry: str
    files: dict[str, FileEntry]
    created_at: str = ""
    revision: str = field(default="")

    def __post_init__(self) -> None:
        if not self.revision:
            object.__setattr__(self, "revision", revision_of(self.files))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "location": self.location,
            "entry": self.entry,
            "revision": self.revision,
            "created_at": self.created_at,
            "files": {
                rel: {"sha256": self.files[rel].sha256, "size": self.files[rel].size}
                for rel in sorted(self.files)
            },
        }

    def to_json(self) -> bytes:
        # Compact: the manifest is fetched whenever it changes (about 100 bytes per file).
        return (json.dumps(self.to_dict(), separators=(",", ":")) + "\n").encode()

    def stamped(self) -> Manifest:
        """A copy with ``created_at`` set to now (UTC, ISO 8601)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Manifest(self.location, self.entry, self.files, now, self.revision)

    @classmethod
    def from_json(cls, raw: bytes | str, location: str | None = None) -> Manifest:
        """Parse and validate a manifest; any inconsistency raises DagopsError (nothing is trusted)."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise DagopsError(f"The code-location manifest is not valid JSON: {exc}.") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DagopsError(f"The code-location manifest is not format {FORMAT}.")
        name = data.get("location")
        if not isinstance(name, str):
            raise DagopsError("The code-location manifest names no location.")
        validate_location_name(name)
        if location is not None and name != location:
            raise DagopsError(f"The manifest names location {name!r}, expected {location!r}.")
        raw_files = data.get("files")
        if not isinstance(raw_files, dict) or not raw_files:
            raise DagopsError("The code-location manifest lists no files.")
        files: dict[str, FileEntry] = {}
        for rel, meta in raw_files.items():
            check_relpath(rel)
            if (
                not isinstance(meta, dict)
                or not isinstance(meta.get("sha256"), str)
                or not _SHA256.fullmatch(meta["sha256"])
                or not isinstance(meta.get("size"), int)
                or meta["size"] < 0
            ):
                raise DagopsError(f"The manifest entry for {rel!r} needs a sha256 and a size.")
            files[rel] = FileEntry(meta["sha256"], meta["size"])
        entry = data.get("entry")
        if not isinstance(entry, str) or entry not in files:
            raise DagopsError(f"The manifest's entry file {entry!r} is not among its files.")
        revision = revision_of(files)
        if data.get("revision") != revision:
            raise DagopsError("The manifest's revision does not match its files.")
        return cls(name, entry, files, str(data.get("created_at") or ""), revision)


def _skipped(name: str, is_dir: bool) -> bool:
    if is_dir:
        return name in SKIPPED_DIRS or name.startswith(".")
    if name.endswith(SKIPPED_SUFFIXES):
        return True
    return name.startswith(".") and name not in KEPT_HIDDEN


def scan(source_dir: Path) -> dict[str, tuple[Path, FileEntry]]:
    """The publishable files under ``source_dir``: relpath -> (path, entry); symlinked dirs skipped."""
    found: dict[str, tuple[Path, FileEntry]] = {}
    for dirpath, dirnames, filenames in os.walk(source_dir):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d, is_dir=True))
        for name in sorted(filenames):
            if _skipped(name, is_dir=False):
                continue
            path = Path(dirpath) / name
            if not path.is_file():  # dangling symlink, socket, ...
                continue
            rel = path.relative_to(source_dir).as_posix()
            found[rel] = (path, FileEntry(sha256_file(path), path.stat().st_size))
    return found


def build(location: str, source_dir: Path, entry: str = "definitions.py") -> tuple[Manifest, dict[str, Path]]:
    """The manifest of ``source_dir`` (unstamped) and where each of its files is on disk."""
    validate_location_name(location)
    if not source_dir.is_dir():
        raise DagopsError(f"The source folder {source_dir} of code location {location!r} does not exist.")
    check_relpath(entry)
    found = scan(source_dir)
    if not found:
        raise DagopsError(f"The source folder {source_dir} of code location {location!r} has no files.")
    if entry not in found:
        raise DagopsError(f"The entry file {entry!r} of code location {location!r} is not in {source_dir}.")
    manifest = Manifest(location, entry, {rel: item[1] for rel, item in found.items()})
    return manifest, {rel: item[0] for rel, item in found.items()}
