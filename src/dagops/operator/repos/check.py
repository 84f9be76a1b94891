"""What a repository must pass before anything is published: no symlink out of the tree, Definitions
found, requirements installed, and the entry loaded in a separate process without the operator's secrets,
on a copy of the tree (what the code writes is never published)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from dagops.errors import DagopsError
from dagops.manifest import scan
from dagops.paths import state_dir
from dagops.operator.repos.git import clone
from dagops.operator.repos.projects import find_entry
from dagops.runtime.requirements import location_env
from dagops.runtime.sync.target import resolve as resolve_target
from dagops.untrusted import untrusted_env

LOADCHECK_TIMEOUT = 300

Log = Callable[[str], None]


def check_tree(tree: Path) -> None:
    """Refuse trees with symlinks that point outside them (their target would be uploaded)."""
    top = tree.resolve()
    for dirpath, dirnames, filenames in os.walk(tree):
        if ".git" in dirnames and Path(dirpath) == tree:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(top):
                raise DagopsError(
                    f"The repository's {path.relative_to(tree)} is a symlink to outside the repository; "
                    "remove it."
                )


def check_loads(tree: Path, entry: str, env: dict[str, str] | None = None, name: str | None = None) -> None:
    """Load ``entry`` in a separate Python process exactly as the code server will
    (``python -m dagops.runtime.sync.loadcheck``); ``env``: the location's environment (``location_env``), of
    which only what untrusted code may see is passed on (``dagops.untrusted.untrusted_env``)."""
    cmd = [sys.executable, "-m", "dagops.runtime.sync.loadcheck", str(tree), entry, *([name] if name else [])]
    with tempfile.TemporaryDirectory(prefix="dagops-loadcheck-") as home:
        # The repository's code: none of the operator's secrets (AWS, database, DAGOPS_* settings).
        env = untrusted_env(Path(home), base=os.environ if env is None else env)
        env["DAGSTER_HOME"] = home
        try:
            proc = subprocess.run(
                cmd, cwd=home, env=env, capture_output=True, text=True, timeout=LOADCHECK_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise DagopsError(f"Importing {entry} took longer than {LOADCHECK_TIMEOUT} s.") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        raise DagopsError(f"The repository's Definitions do not load: {detail.rstrip('.')}.")



def prepare(
    url: str,
    ref: str | None,
    entry: str | None,
    work: Path,
    root: Path,
    log: Log,
    path: str | None = None,
    name: str | None = None,
) -> tuple[str, str, str]:
    """Clone into ``work``, find and load-check the Definitions; return (ref, commit, entry)."""
    ref, commit = clone(url, ref, work)
    log(f"cloned {ref} at {commit[:12]}")
    entry = check_project(work, entry, path, work.parent / "check", root, log, name, commit)
    return ref, commit, entry


def check_project(
    tree: Path,
    entry: str | None,
    path: str | None,
    scratch: Path,
    root: Path,
    log: Log,
    name: str | None,
    commit: str,
) -> str:
    """Find the Definitions of the project in ``tree`` and load-check them on a copy (``scratch``);
    return the entry. ``tree`` must be unchanged by the check."""
    check_tree(tree)
    entry = find_entry(tree, entry, path)
    before = {rel: item for rel, (_path, item) in scan(tree).items()}
    # The repository's code runs on a copy: what it writes (files, links to outside) is never published.
    shutil.copytree(tree, scratch, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    try:
        target = resolve_target(scratch, entry)
        env = location_env(scratch, state_dir(root) / "code", log=log, entry=entry)
        log(f"checking that {target.describe()} loads (commit {commit[:12]})")
        check_loads(scratch, entry, env, name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if {rel: item for rel, (_path, item) in scan(tree).items()} != before:
        raise DagopsError(
            "The repository's files changed while its code was being checked; refusing to publish them."
        )
    return entry

