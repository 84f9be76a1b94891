"""Tasks: repo, external git repositories as code locations (add, update, remove, list, logs).

Without ``--env`` the upload goes to the running local stack (`invoke dev`); with ``--env`` to that
environment's bucket (from its tofu outputs). The registry, code_locations/locations.yaml, is saved
last, so every other part (workspace, local stack, tofu roots) sees a location only once it is complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, task

from dagops.errors import DagopsError
from dagops.names import validate_env_name, validate_location_name
from dagops.operator.tasks import user_errors
from dagops.paths import repo_root

if TYPE_CHECKING:
    from dagops.operator import repos


def _dev_settings(c: Context) -> dict[str, Any]:
    try:
        value = c.config.get("dev")
    except AttributeError:
        return {}
    return dict(value) if value else {}


def _target(c: Context, env: str) -> repos.Target:
    from dagops.operator import repos

    if env:
        validate_env_name(env, repo_root() / "live")
        return repos.env_target(env)
    return repos.local_target(_dev_settings(c))


def _say(line: str) -> None:
    print(line, flush=True)


WAIT_HELP = "wait until the location's running sync agents serve it (default; --no-wait skips)"
TIMEOUT_HELP = "seconds to wait for the agents (default 180)"


def _confirm(c: Context, target: repos.Target, names: list[str], wait: bool, timeout: str, env: str) -> None:
    """Like `invoke dags.deploy`: wake the local agents, then wait for them to serve what was uploaded."""
    from dagops.operator.tasks.dags import wait_seconds, wake_local_agents

    seconds = wait_seconds(timeout)
    if target.bucket is None:
        return
    from dagops.published import read_manifest
    from dagops.runtime.sync.report import confirm

    revisions = {}
    for name in names:
        manifest, _etag = read_manifest(target.s3, target.bucket, name)
        if manifest is not None:
            revisions[name] = manifest.revision
    if not revisions:
        return
    if not env:
        wake_local_agents(c, list(revisions))
    if wait:
        confirm(target.s3, target.bucket, revisions, seconds, say=_say)


MAKE_STYLE = ("REPO_URL", "REPO_NAME", "REF", "ENTRY", "ENV")


def _make_style(*values: str) -> dict[str, str]:
    """``KEY=value`` words of the original make targets (``add-repo REPO_URL=... REPO_NAME=...``)."""
    found: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if sep and key in MAKE_STYLE:
            found[key] = rest
    return found


@task(
    help={
        "url": "git URL: https://host/path, ssh://host/path, user@host:path or file:///path",
        "name": "code-location name: lowercase letter first, then [a-z0-9_-], at most 39 characters",
        "ref": "branch or tag to track (default: the repository's default branch)",
        "entry": "the .py file defining the Definitions, relative to the repository root (default: found)",
        "path": "the folder of the Dagster project inside the repository (a monorepo; default: found)",
        "env": "upload to this environment's bucket instead of the local stack",
        "wait": WAIT_HELP,
        "timeout": TIMEOUT_HELP,
    }
)
@user_errors
def add(
    c: Context,
    url: str = "",
    name: str = "",
    ref: str = "",
    entry: str = "",
    path: str = "",
    env: str = "",
    wait: bool = True,
    timeout: str = "180",
) -> None:
    """Add a git repository as a code location: clone, check its Definitions load, upload, register."""
    from dagops.operator import repos

    if not url or not name:
        raise DagopsError("Give both --url URL and --name NAME.")
    target = _target(c, env)
    repos.add(
        name,
        url,
        s3=target.s3,
        bucket=target.bucket,
        ref=ref or None,
        entry=entry or None,
        path=path or None,
        log=_say,
    )
    if env:
        # A new location has no agent in the environment until its service exists: nothing to wait for.
        _say(f"next: `invoke infra.apply --env {env}` creates its ECS service, Cloud Map name and log group")
        return
    _confirm(c, target, [name], wait, timeout, env)


@task(
    positional=["repo_url", "repo_name"],
    help={
        "repo_url": "git URL (same as repo.add --url); REPO_URL=... also works",
        "repo_name": "code-location name (same as repo.add --name); REPO_NAME=... also works",
        "ref": "branch or tag to track",
        "entry": "the .py file defining the Definitions",
        "env": "upload to this environment's bucket instead of the local stack",
    },
)
def add_repo(
    c: Context,
    repo_url: str | None = None,
    repo_name: str | None = None,
    ref: str = "",
    entry: str = "",
    env: str = "",
) -> None:
    """Add a git repository as a code location (`add-repo REPO_URL=... REPO_NAME=...` works as with make)."""
    repo_url, repo_name = repo_url or "", repo_name or ""
    words = _make_style(repo_url, repo_name)
    if words:
        repo_url, repo_name = words.get("REPO_URL", ""), words.get("REPO_NAME", "")
        ref, entry, env = words.get("REF", ref), words.get("ENTRY", entry), words.get("ENV", env)
    add(c, url=repo_url, name=repo_name, ref=ref, entry=entry, env=env)


def _name(name: str | None) -> str:
    """``--name x``, a positional ``x`` or the make-style ``REPO_NAME=x``."""
    return _make_style(name or "").get("REPO_NAME", name or "")


@task(
    positional=["name"],
    help={
        "name": "the code location to update (REPO_NAME=... also works)",
        "env": "upload to this environment's bucket instead of the local stack",
        "wait": WAIT_HELP,
        "timeout": TIMEOUT_HELP,
    },
)
@user_errors
def update(
    c: Context, name: str | None = None, env: str = "", wait: bool = True, timeout: str = "180"
) -> None:
    """Pull the newest commit of a repository's ref, check it loads, redeploy it, record the commit
    (with every location that shares its clone)."""
    from dagops import registry
    from dagops.operator import repos

    name = _name(name)
    if not name:
        raise DagopsError("Give --name NAME (see `invoke repo.list`).")
    target = _target(c, env)
    updated = repos.update(name, s3=target.s3, bucket=target.bucket, log=_say)
    # Every location sharing the clone moved with it: wait for all of them.
    names = [loc.name for loc in repos.sharing(updated, registry.load())]
    _confirm(c, target, names, wait, timeout, env)


@task(
    positional=["name"],
    help={
        "name": "the code location to remove (REPO_NAME=... also works)",
        "env": "remove its upload from this environment's bucket instead of the local stack",
    },
)
@user_errors
def remove(c: Context, name: str | None = None, env: str = "") -> None:
    """Remove an external repository: its upload, its registration, then its clone."""
    from dagops.operator import repos

    name = _name(name)
    if not name:
        raise DagopsError("Give --name NAME (see `invoke repo.list`).")
    target = _target(c, env)
    local_copy = None
    if not env and target.s3 is None:  # no stack running: its synced copy is removed here
        from dagops.operator.devstack.config import DevConfig

        local_copy = DevConfig.resolve(_dev_settings(c)).code_dir / name
    repos.remove(name, s3=target.s3, bucket=target.bucket, log=_say, local_copy=local_copy)


@task()
@user_errors
def restore(c: Context) -> None:
    """Clone registered repositories missing from repos/ at their recorded commits (fresh checkout, CI)."""
    from dagops.operator import repos

    names = repos.restore(log=_say)
    _say(f"restored {', '.join(names)}" if names else "every registered repository is already in repos/")


@task(name="list")
@user_errors
def list_(c: Context) -> None:
    """List external repositories: name, URL, ref, commit, and sync status in the running local stack."""
    from dagops.operator import repos

    target = repos.local_target(_dev_settings(c))
    print(repos.format_table(repos.list_repos(code_dir=target.code_dir)))


@task(
    positional=["name"],
    help={
        "name": "the code location whose logs to show (REPO_NAME=... also works)",
        "env": "show the location's CloudWatch log group in this environment instead of the local stack",
        "follow": "keep printing new lines until Ctrl-C",
        "since": "with --env: minutes of history to show (default 60)",
    },
)
@user_errors
def logs(c: Context, name: str | None = None, env: str = "", follow: bool = False, since: int = 60) -> None:
    """Show a repository's logs: its sync agent and code server locally, its log group with --env."""
    from dagops.operator import repos

    name = _name(name)
    if not name:
        raise DagopsError("Give --name NAME (see `invoke repo.list`).")
    validate_location_name(name)
    try:
        if env:
            from dagops.operator.aws import Deployment

            validate_env_name(env, repo_root() / "live")
            repos.env_logs(Deployment.load(env), name, since_minutes=since, follow=follow, echo=_say)
        else:
            logs_dir = repos.local_target(_dev_settings(c)).logs_dir
            assert logs_dir is not None
            repos.local_logs(logs_dir, name, follow=follow)
    except KeyboardInterrupt:
        pass


ns = Collection("repo")
ns.add_task(add)
ns.add_task(update)
ns.add_task(remove)
ns.add_task(list_)
ns.add_task(logs)
ns.add_task(restore)

ALIASES = {
    "add-repo": add_repo,
    "update-repo": update,
    "remove-repo": remove,
    "list-repos": list_,
    "repo-logs": logs,
}
