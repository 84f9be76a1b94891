"""Tasks: deploy, releases to an environment on ECS, and looking at it (logs, url, credentials).

Also the ``env`` collection (``env_ns``): pause and resume an environment.
Every setting comes from the environment's tofu outputs (``dagops.operator.outputs``), never from names here.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING

from invoke import Collection, Context, task

from dagops.errors import DagopsError
from dagops.names import validate_image_tag
from dagops.operator.tasks import deployment, say, user_errors

if TYPE_CHECKING:
    pass

# dagops.operator.aws imports boto3: each task imports what it uses, so `invoke --list` stays fast.


def _seconds(value: str, flag: str = "--timeout") -> float:
    """A positive whole number of seconds from a flag's text (taken as str: invoke's int cast tracebacks)."""
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        raise DagopsError(f"{flag} must be a whole number of seconds, got {value!r}.")
    seconds = int(text)
    if seconds <= 0:
        raise DagopsError(f"{flag} must be a positive number of seconds, got {value!r}.")
    return float(seconds)


ENV_HELP = "environment to act on (a folder under live/, e.g. dev or prod)"


@task(
    help={
        "env": ENV_HELP,
        "image_tag": "release this already pushed tag instead of building and pushing the current commit",
        "timeout": "seconds to wait for the services to be stable (default 1800)",
    }
)
@user_errors
def release(c: Context, env: str = "", image_tag: str = "", timeout: str = "1800") -> None:
    """Build and push the image (or take --image-tag), record it as the release, apply, wait until stable."""
    from dagops.operator import infra
    from dagops.operator.aws import ecs
    from dagops.operator.aws import image as images

    wait = _seconds(timeout)
    dep = deployment(env)
    tag = validate_image_tag(image_tag) if image_tag else images.push(dep, echo=say)
    ecs.deploy_image(
        dep,
        tag,
        apply=lambda targets: infra.execute("apply", [env], yes=True, targets=targets),
        echo=say,
        timeout=wait,
    )
    say(f"Environment {env!r} runs {dep.require('ecr_repository_url')}:{tag}.")


@task(help={"env": ENV_HELP, "timeout": "seconds to wait for the setup task to finish (default 900)"})
@user_errors
def db_setup(c: Context, env: str = "", timeout: str = "900") -> None:
    """Create or update Dagster's own database role (run once after the first apply; safe to repeat)."""
    from dagops.operator.aws import db

    wait = _seconds(timeout)
    db.setup_role(deployment(env), echo=say, timeout=wait)


@task(
    help={
        "env": ENV_HELP,
        "timeout": "seconds to wait for the services to be stable (default 1800)",
        "wait": "then wait until every running sync agent serves the new code (default; --no-wait skips)",
    }
)
@user_errors
def everything(c: Context, env: str = "", timeout: str = "1800", wait: bool = True) -> None:
    """Upload every code location's DAGs to S3, restart the services, wait until their agents serve them."""
    from dagops import registry
    from dagops.operator.aws import aws_errors, ecs
    from dagops.publish import publish_location
    from dagops.runtime.sync.report import changed_revisions, confirm

    seconds = _seconds(timeout)
    dep = deployment(env)
    bucket = str(dep.require("bucket_name"))
    with aws_errors(dep):
        s3 = dep.client("s3")
        results = []
        for location in registry.load():
            result = publish_location(s3, bucket, location.name, location.path(), location.entry)
            results.append(result)
            say(result.summary())
    ecs.restart_services(dep, echo=say, timeout=seconds)
    if wait:
        with aws_errors(dep):
            confirm(s3, bucket, changed_revisions(results), seconds, say=say)


@task(
    help={
        "env": ENV_HELP,
        "service": "one service: webserver, daemon, run or code-<location> (default: all)",
        "location": "one code location's logs (its code server and sync agent)",
        "follow": "keep printing new events until Ctrl-C",
        "since": "how far back to start: 30s, 10m, 2h, 1d (default 10m)",
    }
)
@user_errors
def logs(
    c: Context, env: str = "", service: str = "", location: str = "", follow: bool = False, since: str = "10m"
) -> None:
    """Print the environment's CloudWatch logs, all services merged by time (or one service or location)."""
    from dagops.operator.aws import logs as cloudwatch

    dep = deployment(env)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --follow
        cloudwatch.show(dep, service or None, location or None, since=since, follow=follow, echo=say)


@task(help={"env": ENV_HELP})
@user_errors
def show_url(c: Context, env: str = "") -> None:
    """Print the web UI's URL (the load balancer's, or the webserver task's public IP)."""
    from dagops.operator.aws import url

    print(url.webserver_url(deployment(env)))


@task(help={"env": ENV_HELP})
@user_errors
def credentials(c: Context, env: str = "") -> None:
    """Print the environment's S3 access key id and secret, one per line, and nothing else."""
    from dagops.operator.aws.credentials import aws_credentials

    key_id, secret = aws_credentials(deployment(env))
    print(key_id)
    print(secret)


@task(help={"env": ENV_HELP, "timeout": "seconds to wait for each step (default 1800)"})
@user_errors
def pause_env(c: Context, env: str = "", timeout: str = "1800") -> None:
    """Scale every service to zero and stop the database (the cheapest way to keep an environment)."""
    from dagops.operator.aws import pause

    wait = _seconds(timeout)
    pause.pause(deployment(env), echo=say, timeout=wait)


@task(help={"env": ENV_HELP, "timeout": "seconds to wait for each step (default 1800)"})
@user_errors
def resume_env(c: Context, env: str = "", timeout: str = "1800") -> None:
    """Start the database and bring every service back to the task count it had when paused."""
    from dagops.operator.aws import pause

    wait = _seconds(timeout)
    pause.resume(deployment(env), echo=say, timeout=wait)


ns = Collection("deploy")
ns.add_task(release, default=True)
ns.add_task(everything, name="all")
ns.add_task(db_setup, name="db-setup")
ns.add_task(logs)
ns.add_task(show_url, name="url")
ns.add_task(credentials, name="aws-credentials")

env_ns = Collection("env")
env_ns.add_task(pause_env, name="pause")
env_ns.add_task(resume_env, name="resume")

ALIASES = {"deploy-all": everything, "logs": logs, "url": show_url, "aws-credentials": credentials}
