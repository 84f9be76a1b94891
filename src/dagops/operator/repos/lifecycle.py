"""The lifecycle of an external repository as code location: add, update, remove, restore.

Order of writes, so that nothing is half-written: checks first (:mod:`dagops.operator.repos.check`), then the
upload to ``dags/<name>/`` (manifest last), then the clone moved into ``repos/``, then the registry (last).
A failure in any step undoes the earlier ones. Several locations may share one clone (same URL and ref,
another project folder): each has its own registry entry and upload; update moves them together and
remove keeps the clone while another location uses it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dagops import registry
from dagops.errors import DagopsError
from dagops.names import validate_location_name
from dagops.paths import repo_root
from dagops.operator.repos.check import Log, check_project, prepare
from dagops.operator.repos.git import clone_commit, default_branch, remote_commit
from dagops.operator.repos.validate import (
    REPOS_DIR,
    check_name_free,
    validate_entry,
    validate_path,
    validate_ref,
    validate_url,
)


def repos_dir(root: Path) -> Path:
    return root / REPOS_DIR


def _publish(s3: Any, bucket: str | None, name: str, tree: Path, entry: str, log: Log) -> None:
    from dagops.publish import publish_location

    if s3 is None or not bucket:
        log("no upload: the local stack is not running (`invoke dev` publishes every registered location)")
        return
    log(f"uploading to s3://{bucket}/dags/{name}/")
    result = publish_location(s3, bucket, name, tree, entry=entry)
    log(f"uploaded: {result.summary()}")


def _unpublish(s3: Any, bucket: str | None, name: str, log: Log) -> None:
    from dagops.publish import unpublish_location

    if s3 is None or not bucket:
        return
    log(f"removing s3://{bucket}/dags/{name}/")
    unpublish_location(s3, bucket, name)


def _check_prefix_free(s3: Any, bucket: str | None, name: str) -> None:
    """Refuse a name whose S3 prefix holds files: a failed add must never delete what it did not write."""
    if s3 is None or not bucket:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = s3.list_objects_v2(Bucket=bucket, Prefix=f"dags/{name}/", MaxKeys=1).get("KeyCount", 0)
    except (ClientError, BotoCoreError) as exc:
        raise DagopsError(f"Cannot list s3://{bucket}/dags/{name}/: {str(exc).splitlines()[0]}.") from None
    if found:
        raise DagopsError(
            f"s3://{bucket}/dags/{name}/ already holds files of an unregistered location; "
            "choose another name or remove them first."
        )


def _work_dir(root: Path, name: str) -> Path:
    # Beside repos/ (same file system, so moving it into place is one rename), hidden, and private.
    return Path(tempfile.mkdtemp(dir=root, prefix=f".repo-{name}-"))


def add(
    name: str,
    url: str,
    *,
    s3: Any,
    bucket: str | None,
    ref: str | None = None,
    entry: str | None = None,
    path: str | None = None,
    root: Path | None = None,
    log: Log = print,
) -> registry.Location:
    """Clone, check, upload and register an external repository (or its project in folder ``path``)
    as code location ``name``."""
    root = root or repo_root()
    check_name_free(name, root, registry.load(root))
    validate_url(url)
    if ref is not None:
        validate_ref(ref)
    if entry is not None:
        validate_entry(entry)
    if path is not None:
        path = validate_path(path)
    _check_prefix_free(s3, bucket, name)
    log(f"adding {name}: {url}" + (f" at {ref}" if ref else ""))
    locations = registry.load(root)
    shared = shared_clone(url, ref, locations, root, log)
    clone_dir = root / REPOS_DIR / name
    if (clone_dir.exists() or clone_dir.is_symlink()) and (
        shared is None or shared.source != f"{REPOS_DIR}/{name}"
    ):
        users = ", ".join(loc.name for loc in locations if loc.source == f"{REPOS_DIR}/{name}")
        raise DagopsError(f"{REPOS_DIR}/{name} holds the clone that {users} uses; choose another name.")
    if shared is not None:
        return _add_shared(name, shared, s3=s3, bucket=bucket, entry=entry, path=path, root=root, log=log)
    work = _work_dir(root, name)
    tree = work / "tree"
    dest = repos_dir(root) / name
    made_repos_dir = uploaded = moved = False
    try:
        ref, commit, entry = prepare(url, ref, entry, tree, root, log, path, name)
        uploaded = True
        _publish(s3, bucket, name, tree, entry, log)
        locations = registry.load(root)
        check_name_free(name, root, locations)  # someone may have taken it meanwhile
        if not repos_dir(root).is_dir():
            repos_dir(root).mkdir()
            made_repos_dir = True
        os.rename(tree, dest)
        moved = True
        location = registry.Location(
            name=name, source=f"{REPOS_DIR}/{name}", entry=entry, url=url, ref=ref, commit=commit
        )
        registry.save([*locations, location], root)
    except BaseException:
        if moved:
            os.rename(dest, tree)
        if made_repos_dir:
            repos_dir(root).rmdir()
        if uploaded:
            _undo_upload(s3, bucket, name, log)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"added {name}: {url} at {ref} ({commit[:12]}), entry {entry}")
    return location


def shared_clone(
    url: str, ref: str | None, locations: list[registry.Location], root: Path, log: Log = print
) -> registry.Location | None:
    """The registered location whose clone a new location of ``url`` at ``ref`` (the default branch when
    None) shares: same URL, same ref, clone present and at the ref's newest commit (``git ls-remote``, no
    clone). None when there is none: the new location gets a fresh clone of the newest commit."""
    same_url = [loc for loc in locations if loc.url == url and loc.ref and loc.path(root).is_dir()]
    if not same_url:
        return None
    wanted = ref or default_branch(url)
    same_ref = [loc for loc in same_url if loc.ref == wanted]
    if not same_ref:
        return None
    newest = remote_commit(url, wanted)
    current = next((loc for loc in same_ref if loc.commit == newest), None)
    if current is None:
        log(
            f"the clone of {same_ref[0].name} is behind {wanted}: cloning afresh "
            f"(`invoke repo.update {same_ref[0].name}` first lets the two share one clone)"
        )
    return current


def _add_shared(
    name: str,
    shared: registry.Location,
    *,
    s3: Any,
    bucket: str | None,
    entry: str | None,
    path: str | None,
    root: Path,
    log: Log,
) -> registry.Location:
    """Add location ``name`` from the clone ``shared`` already uses (same URL and ref, its commit):
    check its project, upload, register with the same source. Nothing is cloned or moved."""
    commit = shared.commit or ""
    log(f"sharing the clone {shared.source} (of {shared.name}) at {commit[:12]} ({shared.ref})")
    work = _work_dir(root, name)
    uploaded = False
    try:
        tree = shared.path(root)
        entry = check_project(tree, entry, path, work / "check", root, log, name, commit)
        uploaded = True
        _publish(s3, bucket, name, tree, entry, log)
        locations = registry.load(root)
        check_name_free(name, root, locations)  # someone may have taken it meanwhile
        if not any(loc.url == shared.url and loc.source == shared.source for loc in locations):
            raise DagopsError(f"{shared.source} was removed while {name} was being added; add it again.")
        location = dataclasses.replace(shared, name=name, entry=entry, extra={})
        registry.save([*locations, location], root)
    except BaseException:
        if uploaded:
            _undo_upload(s3, bucket, name, log)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"added {name}: {shared.url} at {shared.ref} ({commit[:12]}), entry {entry}, clone {shared.source}")
    return location


def _undo_upload(s3: Any, bucket: str | None, name: str, log: Log) -> None:
    try:
        _unpublish(s3, bucket, name, log)
    except Exception as exc:  # the original error matters more; say what is left behind
        log(f"warning: could not remove s3://{bucket}/dags/{name}/ after the failure ({exc})")


def external(name: str, root: Path) -> registry.Location:
    """The registered location ``name``, which must be an external repository."""
    validate_location_name(name)
    location = registry.get(name, root)
    if not location.url:
        raise DagopsError(
            f"{name!r} is one of the project's own code locations ({location.source}), "
            "not an external repository."
        )
    return location


def sharing(location: registry.Location, locations: list[registry.Location]) -> list[registry.Location]:
    """The external locations that use ``location``'s clone, ``location`` first."""
    others = [loc for loc in locations if loc.url and loc.source == location.source and loc != location]
    return [location, *others]


def update(
    name: str, *, s3: Any, bucket: str | None, root: Path | None = None, log: Log = print
) -> registry.Location:
    """Fetch the newest commit of the location's ref, check it, redeploy it and record the commit.

    Every location that shares the clone moves with it: each is checked at the new commit before any
    is uploaded, and the update is refused, naming the one that fails, unless all of them load."""
    root = root or repo_root()
    current = external(name, root)
    group = sharing(current, registry.load(root))
    dest = current.path(root)
    tracked = current.ref if current.ref and current.ref != "HEAD" else None
    also = f" (with {', '.join(loc.name for loc in group[1:])})" if group[1:] else ""
    if dest.is_dir() and current.commit and remote_commit(current.url or "", tracked) == current.commit:
        log(f"{name}{also} is up to date at {current.commit[:12]} ({current.ref or 'HEAD'})")
        return current
    work = _work_dir(root, name)
    tree, old = work / "tree", work / "old"
    published: list[registry.Location] = []
    swapped = False
    try:
        ref, commit, entry = prepare(current.url or "", tracked, current.entry, tree, root, log, name=name)
        if commit == current.commit and dest.is_dir():
            log(f"{name}{also} is up to date at {commit[:12]} ({ref})")
            return current
        _check_sharers(group[1:], name, tree, work / "check", root, log, commit)
        for loc in group:
            published.append(loc)
            _publish(s3, bucket, loc.name, tree, entry if loc is current else loc.entry, log)
        if dest.exists():
            os.rename(dest, old)
        os.rename(tree, dest)
        swapped = True
        names = {loc.name for loc in group}
        locations = [
            dataclasses.replace(loc, commit=commit, ref=ref) if loc.name in names else loc
            for loc in registry.load(root)
        ]
        registry.save(locations, root)
    except BaseException:
        if swapped:
            os.rename(dest, tree)
            if old.exists():
                os.rename(old, dest)
        for loc in published if dest.is_dir() else []:
            _restore_upload(s3, bucket, loc.name, dest, tree, loc.entry, log)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"updated {name}{also}: {(current.commit or '?')[:12]} -> {commit[:12]} ({ref})")
    return registry.get(name, root)


def _check_sharers(
    others: list[registry.Location], name: str, tree: Path, scratch: Path, root: Path, log: Log, commit: str
) -> None:
    """Load-check, at the new commit in ``tree``, every other location sharing ``name``'s clone."""
    for loc in others:
        try:
            check_project(tree, loc.entry, None, scratch, root, log, loc.name, commit)
        except DagopsError as exc:
            raise DagopsError(
                f"Not updating {name}: {loc.name} shares its clone and would not load at {commit[:12]} "
                f"({str(exc).rstrip('.')})."
            ) from None


def _restore_upload(
    s3: Any, bucket: str | None, name: str, previous: Path, attempted: Path, entry: str, log: Log
) -> None:
    """After a failed update upload: put the previous commit's files back, so S3 matches the registry.

    Files that changed between the two commits may already hold the new content under the old
    manifest; they are deleted first, so the republish uploads them again whatever their size.
    """
    from dagops.manifest import build

    try:
        old_files = build(name, previous, entry)[0].files
        new_files = build(name, attempted, entry)[0].files if attempted.is_dir() else {}
        changed = sorted(
            rel for rel, item in old_files.items() if rel in new_files and new_files[rel] != item
        )
        if s3 is not None and bucket and changed:
            s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": f"dags/{name}/{rel}"} for rel in changed], "Quiet": True},
            )
        _publish(s3, bucket, name, previous, entry, log)
    except Exception as exc:  # the update's own error is the one to report
        log(
            f"warning: could not restore the previous upload of {name} ({exc}); "
            "run `invoke repo.update` again"
        )


def remove(
    name: str,
    *,
    s3: Any,
    bucket: str | None,
    root: Path | None = None,
    log: Log = print,
    local_copy: Path | None = None,
) -> None:
    """Remove the upload (manifest first), then the registration, then the clone, then ``local_copy``
    (a stopped local stack's synced releases of the location; a running stack deletes its own).

    In this order an interrupted removal can always be finished by running it again: the location
    stays registered until its upload is gone, and the clone goes last.
    """
    root = root or repo_root()
    location = external(name, root)
    _unpublish(s3, bucket, name, log)
    remaining = [loc for loc in registry.load(root) if loc.name != name]
    registry.save(remaining, root)
    clone_dir = location.path(root)
    users = [loc.name for loc in remaining if loc.url and loc.source == location.source]
    if users:
        log(f"kept {location.source}: {', '.join(users)} still uses it")
    elif clone_dir.exists():
        aside = Path(tempfile.mkdtemp(dir=root, prefix=f".repo-{name}-")) / "old"
        os.rename(clone_dir, aside)
        shutil.rmtree(aside.parent, ignore_errors=True)
    if local_copy is not None and local_copy.name == name:
        shutil.rmtree(local_copy, ignore_errors=True)
    log(f"removed {name}")


def restore(root: Path | None = None, log: Log = print) -> list[str]:
    """Clone every registered repository missing from repos/ at its recorded commit (a fresh checkout,
    a CI job): what dags.deploy publishes is then exactly what was added or last updated."""
    root = root or repo_root()
    restored = []
    for location in registry.load(root):
        dest = location.path(root)
        if not location.url or dest.exists():
            continue
        validate_url(location.url)
        log(f"restoring {location.name} at {(location.commit or '?')[:12]} from {location.url}")
        work = _work_dir(root, location.name)
        try:
            clone_commit(location.url, location.commit or "", work / "tree")
            repos_dir(root).mkdir(exist_ok=True)
            os.rename(work / "tree", dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        restored.append(location.name)
    return restored

