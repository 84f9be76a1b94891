"""Tasks: dags, publishing code locations to S3 and reading the sync agents' status.

``dags.deploy`` uploads what changed in each registered location (manifest last) to the local stack's S3
endpoint, or with ``--env`` to that environment's bucket, then waits until the sync agents report serving
it (dagops.runtime.sync.report; ``--no-wait`` skips that). Locally the agents are woken at once.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from invoke import Collection, Context, task

from dagops import registry
from dagops.errors import DagopsError
from dagops.names import validate_env_name, validate_location_name
from dagops.operator.tasks import user_errors
from dagops.paths import repo_root

WAIT_TIMEOUT = 180


def _dev_settings(c: Context) -> dict[str, Any]:
    try:
        value = c.config.get("dev")
    except AttributeError:
        return {}
    return dict(value) if value else {}


def _target(c: Context, env: str, bucket: str, endpoint_url: str) -> tuple[Any, str, str]:
    """(S3 client, bucket, description) of where to publish."""
    if env:
        import boto3

        from dagops.operator import outputs

        validate_env_name(env, repo_root() / "live")
        values = outputs.load(env)
        name = str(outputs.require(values, "bucket_name", env))
        return boto3.client("s3", region_name=values.get("region") or None), name, f"environment {env}"
    from dagops import settings

    given = settings.load(settings.S3Settings)
    bucket = bucket or given.bucket or ""
    endpoint_url = endpoint_url or given.endpoint_url or ""
    if endpoint_url and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/\S*)?", endpoint_url):
        raise DagopsError(
            f"The S3 endpoint {endpoint_url!r} is not an http(s) URL such as http://127.0.0.1:9000."
        )
    if bucket:
        import boto3

        # An explicit bucket: AWS itself, or the S3-compatible endpoint given with it.
        return boto3.client("s3", endpoint_url=endpoint_url or None), bucket, endpoint_url or "AWS"
    from dagops.operator.devstack import s3 as local_s3
    from dagops.operator.devstack.config import DevConfig
    from dagops.operator.devstack.state import read_state, running_pid

    config = DevConfig.resolve(_dev_settings(c))
    state = read_state(config) if running_pid(config) is not None else {}
    endpoint = endpoint_url or state.get("s3_endpoint") or config.s3_endpoint
    bucket = bucket or state.get("bucket") or config.bucket
    if not local_s3.is_ready(endpoint):
        raise DagopsError(
            f"No S3 endpoint answers at {endpoint}: start the local stack with `invoke dev` "
            "(it publishes every location itself), or pass --env ENV."
        )
    return local_s3.client(endpoint), bucket, f"local stack ({endpoint})"


def _locations(location: str) -> list[registry.Location]:
    if location:
        validate_location_name(location)
        return [registry.get(location)]
    found = registry.load()
    if not found:
        raise DagopsError("No code locations are registered in code_locations/locations.yaml.")
    return found


@task(
    help={
        "env": "publish to this environment's bucket (from its tofu outputs) instead of the local stack",
        "location": "publish only this code location (default: every registered one)",
        "bucket": "bucket to publish to (default: $DAGSTER_S3_BUCKET, else the local stack's)",
        "endpoint_url": "S3 endpoint (default: $AWS_ENDPOINT_URL, else the local stack's)",
        "wait": "wait until every running sync agent serves the new code (default; --no-wait skips)",
        "timeout": f"seconds to wait for the agents (default {WAIT_TIMEOUT})",
    }
)
@user_errors
def deploy(
    c: Context,
    env: str = "",
    location: str = "",
    bucket: str = "",
    endpoint_url: str = "",
    wait: bool = True,
    timeout: str = str(WAIT_TIMEOUT),
) -> None:
    """Publish code locations to S3 (changed files only, manifest last); wait until the agents serve it."""
    from dagops.publish import publish_location
    from dagops.runtime.sync.report import changed_revisions, confirm

    seconds = wait_seconds(timeout)
    locations = _locations(location)
    s3, name, where = _target(c, env, bucket, endpoint_url)
    print(f"publishing {len(locations)} code location(s) to s3://{name}/dags/ on {where}", flush=True)
    results = []
    for loc in locations:
        result = publish_location(s3, name, loc.name, loc.path(), loc.entry)
        results.append(result)
        print(f"  {result.summary()}", flush=True)
    changed = changed_revisions(results)
    if not env:
        wake_local_agents(c, list(changed))
    if wait:
        confirm(s3, name, changed, seconds, say=_say)


def _say(line: str) -> None:
    print(line, flush=True)


def wait_seconds(value: str) -> float:
    """``--timeout`` as a positive whole number of seconds (text: invoke's int cast would traceback)."""
    text = str(value).strip()
    if not text.isdigit() or int(text) <= 0:
        raise DagopsError(f"--timeout must be a positive whole number of seconds, got {value!r}.")
    return float(text)


def wake_local_agents(c: Context, names: list[str]) -> None:
    """Nudge the running local stack's agents of ``names`` to poll now (nothing when none runs)."""
    if not names:
        return
    from dagops.operator.devstack.config import DevConfig
    from dagops.operator.devstack.control import wake_agents

    wake_agents(DevConfig.resolve(_dev_settings(c)), names)


def _code_dir(c: Context, code_dir: str) -> Path:
    if code_dir:
        return Path(code_dir)
    from dagops.operator.devstack.config import DevConfig

    return DevConfig.resolve(_dev_settings(c)).code_dir


@task(
    help={
        "location": "only this code location (default: every registered one)",
        "code_dir": "where the agents keep their trees (default: the local stack's)",
        "json": "print the status files as JSON",
    }
)
@user_errors
def status(c: Context, location: str = "", code_dir: str = "", json_: bool = False) -> None:
    """Print what each sync agent of the local stack serves, and its last error."""
    from dagops.operator.code_watch import read_records
    from dagops.operator.devstack.config import DevConfig
    from dagops.operator.devstack.state import running_pid
    from dagops.runtime.sync.layout import LocationDir
    from dagops.runtime.sync.status import format_status, read_status

    config = DevConfig.resolve(_dev_settings(c))
    root = _code_dir(c, code_dir)
    names = [loc.name for loc in _locations(location)]
    published = read_records(config.run_dir)
    found: dict[str, Any] = {}
    # No embedded stack: the agents may run in the compose stack's containers; they report through S3.
    reported = {} if code_dir or running_pid(config) is not None else _reports(config, names)
    for name in names:
        agents = reported.get(name)
        item = None if agents else read_status(LocationDir(root, name).root)
        found[name] = {"location": name, "agents": [asdict(r) for r in agents]} if agents else None
        if item:
            found[name] = asdict(item)
        last = published.get(name)
        if found[name] is not None and last:
            found[name]["last_publish"] = last
        if not json_:
            if item:
                print(format_status(item))
            elif agents:
                print("\n".join(_report_lines(r) for r in agents))
            else:
                print(f"location      {name}\nstate         (no agent has run)")
            if last:  # the running stack's watcher: what the last save published, and its outcome
                print(f"last publish  {last.get('at', '?')} {last.get('line', '')}")
            print()
    if json_:
        print(json.dumps(found, indent=1))
    if all(v is None for v in found.values()):
        raise DagopsError(f"No sync agent status under {root}; is the local stack running (`invoke dev`)?")


def _reports(config: Any, names: list[str]) -> dict[str, list[Any]]:
    """The running agents' reports (runtime.sync.report) of ``names`` at the local S3 endpoint; {} when
    none answers there."""
    import time

    from botocore.exceptions import BotoCoreError, ClientError

    from dagops.operator.devstack import s3 as local_s3
    from dagops.runtime.sync.report import read_reports

    if not names or not local_s3.is_ready(config.s3_endpoint):
        return {}
    client, now = local_s3.client(config.s3_endpoint), time.time()
    try:
        return {n: [r for r in read_reports(client, config.bucket, n) if r.fresh(now)] for n in names}
    except (BotoCoreError, ClientError):  # no bucket yet, or not an S3 server
        return {}


def _report_lines(report: Any) -> str:
    """One agent's report, in the layout of the status files (format_status)."""
    revision = report.revision[:12] if report.revision else "(none)"
    lines = [
        f"location      {report.location}",
        f"agent         {report.agent}",
        f"state         {'serving' if report.serving else 'starting'}",
        f"revision      {revision}",
    ]
    if report.bad_revision:
        lines.append(f"last error    {report.error or 'the import check failed'}")
    return "\n".join(lines)


ns = Collection("dags")
ns.add_task(deploy, default=True)
ns.add_task(status)
ALIASES: dict[str, Any] = {"deploy-dags": deploy}
