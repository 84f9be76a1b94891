"""Tasks: image, the one runtime image (build locally, push to an environment's ECR repository)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection, Context, task

from dagops.operator.tasks import deployment, say, user_errors

if TYPE_CHECKING:
    pass

# dagops.operator.aws imports boto3: each task imports it when it runs, so `invoke --list` stays fast.


@task(
    help={
        "tag": "image tag (default: the short git SHA, with -dirty for uncommitted changes)",
        "platform": "target platform, e.g. linux/arm64 (Fargate) or linux/amd64 (default: this machine's)",
        "python-image": "Python base image (default: DAGOPS_PYTHON_IMAGE, else the Dockerfile's python slim)",
        "uv-image": "image holding /uv (default: DAGOPS_UV_IMAGE, else ghcr.io/astral-sh/uv)",
    }
)
@user_errors
def build(c: Context, tag: str = "", platform: str = "", python_image: str = "", uv_image: str = "") -> None:
    """Build the runtime image into the local Docker engine as dagops:<git sha>."""
    from dagops.operator.aws import image as images

    bases = images.base_images(python_image, uv_image)
    ref = images.build(tag or None, platform or None, echo=say, build_args=bases)
    say(f"Built {ref}.")


@task(
    help={
        "env": "environment whose ECR repository receives the image (a folder under live/)",
        "tag": "image tag (default: the short git SHA)",
        "platform": "target platform (default: linux/arm64, what Fargate runs)",
    }
)
@user_errors
def push(c: Context, env: str = "", tag: str = "", platform: str = "") -> None:
    """Build the image for Fargate and push it to the environment's ECR repository as <git sha>."""
    from dagops.operator.aws import image as images

    dep = deployment(env)
    pushed = images.push(dep, tag or None, platform or images.PUSH_PLATFORM, echo=say)
    say(f"Pushed {dep.require('ecr_repository_url')}:{pushed}.")


ns = Collection("image")
ns.add_task(build)
ns.add_task(push)
ALIASES = {"build": build, "push": push}
