"""git, run safely: an argument list (never a shell), no prompts, no hooks, https/ssh/file only, a timeout,
and a failure as one sentence."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from dagops.errors import DagopsError

GIT_TIMEOUT_VAR = "DAGOPS_GIT_TIMEOUT"
# Transports git may use, for the clone and anything it triggers (no ext::, no fd::, no plain http).
ALLOWED_PROTOCOLS = "https:ssh:file"


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS,
        GCM_INTERACTIVE="never",
        LC_ALL="C",
    )
    return env


def _git_detail(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line.split(":", 1)[1].strip().rstrip(".")
    return lines[-1].rstrip(".") if lines else "git gave no reason"


def git(args: list[str], *, cwd: Path | None = None, what: str = "git") -> str:
    """Run git with an argument list (never a shell), no prompts and a timeout; return stdout."""
    from dagops import settings  # here: pydantic stays out of `invoke --list`

    timeout = settings.load(settings.OperatorSettings).git_timeout
    cmd = ["git", "-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=_git_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise DagopsError("git is not installed or not on PATH.") from None
    except subprocess.TimeoutExpired:
        raise DagopsError(
            f"{what} took longer than {timeout:.0f} s (set {GIT_TIMEOUT_VAR} to allow more)."
        ) from None
    if proc.returncode != 0:
        raise DagopsError(f"{what} failed: {_git_detail(proc.stderr)}.")
    return proc.stdout.strip()


def clone(url: str, ref: str | None, dest: Path) -> tuple[str, str]:
    """Clone ``url`` at ``ref`` (default branch when None), shallow, into the empty/absent ``dest``.

    Returns ``(ref, commit)``: the branch or tag actually cloned and the full commit id.
    """
    args = ["clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags"]
    if ref:
        args += ["--branch", ref]
    git([*args, "--", url, str(dest)], what=f"git clone of {url}")
    commit = git(["rev-parse", "HEAD"], cwd=dest, what="git rev-parse")
    if not ref:
        try:
            ref = git(["symbolic-ref", "--short", "HEAD"], cwd=dest, what="git symbolic-ref")
        except DagopsError:
            ref = "HEAD"
    return ref, commit


def remote_commit(url: str, ref: str | None) -> str | None:
    """The commit ``ref`` (default branch when None) points at in ``url``, from ``git ls-remote`` (no
    clone); None when the remote does not list it."""
    wanted = [f"refs/tags/{ref}^{{}}", f"refs/heads/{ref}", f"refs/tags/{ref}"] if ref else ["HEAD"]
    # An annotated tag is listed twice: the tag object, then (pattern "<tag>^{}") its commit.
    patterns = [ref, f"{ref}^{{}}"] if ref else ["HEAD"]
    out = git(["ls-remote", "--", url, *patterns], what=f"git ls-remote of {url}")
    found = {}
    for line in out.splitlines():
        commit, _, name = line.partition("\t")
        found[name.strip()] = commit.strip()
    for name in wanted:
        if re.fullmatch(r"[0-9a-f]{40}", found.get(name, "")):
            return found[name]
    return None


def default_branch(url: str) -> str | None:
    """The branch ``url``'s HEAD names, from ``git ls-remote --symref`` (no clone); None if none."""
    out = git(["ls-remote", "--symref", "--", url, "HEAD"], what=f"git ls-remote of {url}")
    for line in out.splitlines():
        target, _, head = line.partition("\t")
        if head.strip() == "HEAD" and target.startswith("ref: refs/heads/"):
            return target.removeprefix("ref: refs/heads/")
    return None


def clone_commit(url: str, commit: str, dest: Path) -> None:
    """Check out exactly ``commit`` of ``url`` into ``dest`` (one shallow fetch by commit id)."""
    if not re.fullmatch(r"[0-9a-f]{40}", commit or ""):
        raise DagopsError(f"The registry records no full commit id for {url} ({commit!r}); run repo.update.")
    dest.mkdir(parents=True, exist_ok=True)
    git(["init", "--quiet", str(dest)], what="git init")
    git(["fetch", "--quiet", "--depth", "1", "--", url, commit], cwd=dest, what=f"git fetch of {commit[:12]}")
    git(["checkout", "--quiet", "--detach", "FETCH_HEAD"], cwd=dest, what="git checkout")
