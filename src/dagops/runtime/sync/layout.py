"""The on-disk layout of one synced code location::

<code-dir>/<location>/
    current -> releases/<revision>      the live tree (a relative symlink, replaced in one rename)
    releases/<revision>/                complete, verified, import-checked trees (the last two kept)
    releases/<revision>.manifest.json   the manifest each tree was built from
    releases/.build-*/                  trees being built (never served; removed on failure/restart)
    status.json                         the agent's status
    .lock                               held (flock) while a sync step changes the releases
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from dagops.errors import DagopsError
from dagops.manifest import Manifest

KEEP_RELEASES = 2


class LocationDir:
    def __init__(self, code_dir: Path, location: str) -> None:
        self.location = location
        self.root = Path(code_dir) / location
        self.releases = self.root / "releases"
        self.current = self.root / "current"

    def release_path(self, revision: str) -> Path:
        return self.releases / revision

    def sidecar_path(self, revision: str) -> Path:
        return self.releases / f"{revision}.manifest.json"

    def has_release(self, revision: str) -> bool:
        return self.release_path(revision).is_dir() and self.sidecar_path(revision).is_file()

    def current_revision(self) -> str | None:
        """The revision ``current`` points at, if it points at a complete release."""
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        revision = Path(target).name
        return revision if self.has_release(revision) else None

    def release_manifest(self, revision: str) -> Manifest | None:
        try:
            return Manifest.from_json(self.sidecar_path(revision).read_bytes())
        except (OSError, DagopsError):
            return None

    def current_manifest(self) -> Manifest | None:
        revision = self.current_revision()
        return self.release_manifest(revision) if revision else None

    def new_build_dir(self, revision: str) -> Path:
        self.releases.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            path = self.releases / f".build-{revision[:16]}-{os.getpid()}-{n}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise DagopsError(f"Cannot create a build folder under {self.releases}.")

    def install(self, build_dir: Path, manifest: Manifest) -> None:
        """Move a verified build into ``releases/<revision>`` and record its manifest (tree first)."""
        target = self.release_path(manifest.revision)
        sidecar = self.sidecar_path(manifest.revision)
        sidecar.unlink(missing_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.rename(build_dir, target)
        tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        tmp.write_bytes(manifest.to_json())
        os.replace(tmp, sidecar)

    def swap(self, revision: str) -> None:
        """Point ``current`` at ``releases/<revision>`` in one rename: readers see the old tree or the new."""
        if not self.has_release(revision):
            raise DagopsError(f"Release {revision[:12]} of {self.location!r} is not complete; not swapping.")
        tmp = self.root / f".current.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(os.path.join("releases", revision), tmp)
        os.replace(tmp, self.current)

    def prune(self, keep: int = KEEP_RELEASES) -> list[str]:
        """Delete all but the current release and the most recent others (``keep`` in all)."""
        current = self.current_revision()
        candidates = []
        for path in self.releases.glob("*.manifest.json"):
            revision = path.name.removesuffix(".manifest.json")
            if revision != current:
                candidates.append((path.stat().st_mtime, revision))
        candidates.sort(reverse=True)
        kept = 1 if current else 0
        removed = []
        for _, revision in candidates:
            if kept < keep:
                kept += 1
                continue
            self.sidecar_path(revision).unlink(missing_ok=True)
            shutil.rmtree(self.release_path(revision), ignore_errors=True)
            removed.append(revision)
        return removed

    def clean_incomplete(self) -> None:
        """Remove builds left by a crash and trees without a manifest record (never the current one)."""
        if not self.releases.is_dir():
            return
        current = self.current_revision()
        for path in self.releases.iterdir():
            unrecorded = path.is_dir() and path.name != current and not self.sidecar_path(path.name).is_file()
            if path.name.startswith(".build-") or unrecorded:
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock on this location's releases (two agents on one folder take turns)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
