"""The manifest of a published code location: which files, with which content, make one revision.

``dags/<location>/_manifest.json`` is written last by every publish and is the only thing a sync agent
trusts. Its format (README, "Contracts between the parts")::

    {"format": 2, "location": "main", "entry": "definitions.py", "revision": "<sha256>",
     "created_at": "...", "files": {"<relpath>": {"sha256": "<hex>", "size": <int>}}}

``revision`` is the sha256 of the canonical JSON list ``[["<relpath>","<sha256>"], ...]`` (sorted by
path, ASCII, no spaces): an unambiguous function of the (path, content) pairs, so it changes exactly when
the content of some file, or the set of files, changes. Format 1 (written by older versions: the sha256
of newline-joined ``relpath:sha256`` lines) is still read, checked by its own rule and converted.

Everything here is untrusted input: :meth:`Manifest.from_json` bounds the size, refuses duplicate keys,
non-UTF-8 bytes, wrong types (``true`` is not a size) and deep nesting, and :func:`check_relpath` is the
one rule, used by publish and by the sync agent alike, for which file names a code location may hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from dagops.errors import DagopsError
from dagops.names import validate_location_name

FORMAT = 2
READABLE_FORMATS = (1, 2)
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
# Bounds on what a manifest may claim, checked before anything is parsed or downloaded.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024  # about 150,000 files
MAX_FILE_BYTES = 5 * 1024**3  # the largest object one S3 PutObject (what publish uses) can write
MAX_NAME_BYTES = 255  # one path component (the limit of ext4, xfs, apfs ...)
MAX_RELPATH_BYTES = 900  # the S3 key "dags/<location>/<relpath>" stays under S3's 1,024 bytes


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_bounded(response: dict[str, Any], limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """The body of an S3 GetObject ``response`` (a manifest), reading at most ``limit + 1`` bytes.

    An announced length over ``limit`` raises DagopsError without reading; a body that is longer than
    announced comes back as ``limit + 1`` bytes, which :meth:`Manifest.from_json` refuses.
    """
    body = response["Body"]
    try:
        length = response.get("ContentLength")
        if isinstance(length, int) and length > limit:
            raise DagopsError(f"The code-location manifest is larger than {limit} bytes ({length}).")
        return bytes(body.read(limit + 1))
    finally:
        body.close()


def revision_of(files: dict[str, FileEntry]) -> str:
    """The revision of a set of files: sha256 of the canonical JSON list of sorted (path, sha256) pairs."""
    pairs = [[rel, files[rel].sha256] for rel in sorted(files)]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=True, separators=(",", ":")).encode()).hexdigest()


def _revision_v1(files: dict[str, FileEntry]) -> str:
    """Format 1's revision (newline-joined ``relpath:sha256``); unambiguous only because
    :func:`check_relpath` refuses control characters in names."""
    lines = "\n".join(f"{rel}:{files[rel].sha256}" for rel in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def relpath_problem(rel: object) -> str | None:
    """Why ``rel`` cannot name a file of a code location (None: it can).

    The one rule for both sides: publish refuses such a file before writing anything, and a sync agent
    refuses a manifest naming one. A name must be a relative POSIX path of UTF-8 text without control
    characters or backslashes, without empty, '.' or '..' parts, short enough for every file system
    and for an S3 key, and not one of the names the location's prefix reserves.
    """
    if not isinstance(rel, str) or not rel:
        return "it is empty"
    try:
        encoded = rel.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not UTF-8 text"
    if any(unicodedata.category(ch) == "Cc" for ch in rel):
        return "it contains a control character (newline, tab, NUL ...)"
    if "\\" in rel:
        return "it contains a backslash"
    if PurePosixPath(rel).is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")):
        return "it is not a plain relative path (no leading '/', no empty, '.' or '..' parts)"
    if rel in RESERVED_NAMES:
        return f"{' and '.join(sorted(RESERVED_NAMES))} are reserved for the publish itself"
    if len(encoded) > MAX_RELPATH_BYTES:
        return f"it is longer than {MAX_RELPATH_BYTES} bytes"
    if any(len(part.encode()) > MAX_NAME_BYTES for part in rel.split("/")):
        return f"a part of it is longer than {MAX_NAME_BYTES} bytes"
    return None


def check_relpath(rel: str) -> str:
    """Return ``rel`` if it may name a file of a code location (:func:`relpath_problem`), else raise."""
    problem = relpath_problem(rel)
    if problem:
        raise DagopsError(f"Unsafe or reserved file path {rel!r} in a code location: {problem}.")
    return rel


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key[:80]!r}")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool: true is not a size


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
        """Parse and validate a manifest; any content at all either parses or raises DagopsError.

        Bounded before parsing (:data:`MAX_MANIFEST_BYTES`); strict UTF-8, no duplicate keys, no NaN,
        exact types (a boolean is not a number); the revision must match the files.
        """
        if len(raw) > MAX_MANIFEST_BYTES:
            raise DagopsError(f"The code-location manifest is larger than {MAX_MANIFEST_BYTES} bytes.")
        if isinstance(raw, bytes | bytearray):
            try:
                text = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise DagopsError("The code-location manifest is not UTF-8 text.") from None
        else:
            text = raw
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        except RecursionError:
            raise DagopsError(
                "The code-location manifest is not valid JSON: it is nested too deeply."
            ) from None
        except ValueError as exc:
            reason = " ".join(str(exc).split())[:200]
            raise DagopsError(f"The code-location manifest is not valid JSON: {reason}.") from None
        fmt = data.get("format") if isinstance(data, dict) else None
        if not _is_int(fmt) or fmt not in READABLE_FORMATS:
            raise DagopsError(f"The code-location manifest is not format {FORMAT}.")
        assert isinstance(data, dict)
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
                or not _is_int(meta.get("size"))
                or not 0 <= meta["size"] <= MAX_FILE_BYTES
            ):
                raise DagopsError(
                    f"The manifest entry for {rel!r} needs a sha256 and a size (an integer, "
                    f"0 to {MAX_FILE_BYTES} bytes)."
                )
            files[rel] = FileEntry(meta["sha256"], meta["size"])
        entry = data.get("entry")
        if not isinstance(entry, str) or entry not in files:
            shown = entry[:200] if isinstance(entry, str) else type(entry).__name__
            raise DagopsError(f"The manifest's entry file {shown!r} is not among its files.")
        created_at = data.get("created_at") or ""
        if not isinstance(created_at, str) or len(created_at) > 64:
            raise DagopsError("The manifest's created_at is not a timestamp string.")
        expected = revision_of(files) if fmt == FORMAT else _revision_v1(files)
        if data.get("revision") != expected:
            raise DagopsError("The manifest's revision does not match its files.")
        # A format-1 manifest is converted: its files and entry, under this format's revision.
        return cls(name, entry, files, created_at)


def _skipped(name: str, is_dir: bool) -> bool:
    if is_dir:
        return name in SKIPPED_DIRS or name.startswith(".")
    if name.endswith(SKIPPED_SUFFIXES):
        return True
    return name.startswith(".") and name not in KEPT_HIDDEN


def _refuse(source_dir: Path, rel: str, why: str) -> DagopsError:
    return DagopsError(f"Refusing to publish {source_dir}: {rel!r} {why}.")


def _link_target(source_dir: Path, top: Path, path: Path, rel: str) -> Path:
    """Where the symbolic link ``path`` leads, which must be inside the tree; else raise."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _refuse(source_dir, rel, "is a symbolic link that leads nowhere (dangling or a loop)") from None
    if not target.is_relative_to(top):
        raise _refuse(
            source_dir,
            rel,
            "is a symbolic link to outside the folder (only the folder's own files are published)",
        )
    return target


def scan(source_dir: Path) -> dict[str, tuple[Path, FileEntry]]:
    """The publishable files under ``source_dir``: relpath -> (path to read, entry).

    Nothing from outside the tree: a symbolic link whose target is outside ``source_dir`` (or nowhere)
    is refused; a link to a file inside is published as a copy of that file (the path to read is the
    target); a link to a folder inside is skipped (its files are published under their own path).
    Every name is checked by :func:`relpath_problem` (the rule the sync agent applies), so a tree an
    agent would refuse is refused here, with one sentence, before anything is written.
    """
    found: dict[str, tuple[Path, FileEntry]] = {}
    top = source_dir.resolve()
    for dirpath, dirnames, filenames in os.walk(source_dir):
        base = Path(dirpath)
        kept_dirs = []
        for name in sorted(d for d in dirnames if not _skipped(d, is_dir=True)):
            if (base / name).is_symlink():
                _link_target(source_dir, top, base / name, (base / name).relative_to(source_dir).as_posix())
                continue  # os.walk does not descend into it
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            if _skipped(name, is_dir=False):
                continue
            path = base / name
            rel = path.relative_to(source_dir).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                read = _link_target(source_dir, top, path, rel)
                if not read.is_file():
                    continue  # a link to a socket or device: not content
            elif stat.S_ISREG(mode):
                read = path
            else:  # socket, FIFO, device
                continue
            problem = relpath_problem(rel)
            if problem:
                raise _refuse(source_dir, rel, f"cannot be a file of a code location: {problem}")
            size = read.stat().st_size
            if size > MAX_FILE_BYTES:
                raise _refuse(
                    source_dir, rel, f"is larger than {MAX_FILE_BYTES} bytes (the most one upload holds)"
                )
            found[rel] = (read, FileEntry(sha256_file(read), size))
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
    if len(manifest.stamped().to_json()) > MAX_MANIFEST_BYTES:
        raise DagopsError(
            f"The source folder {source_dir} of code location {location!r} has too many files "
            f"({len(found)}): its manifest would exceed {MAX_MANIFEST_BYTES} bytes, which agents refuse."
        )
    return manifest, {rel: item[0] for rel, item in found.items()}
