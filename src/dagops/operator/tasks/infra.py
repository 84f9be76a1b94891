"""Tasks: infra — OpenTofu on one live/<env> root (tofu preferred, terraform as the fallback)."""

from __future__ import annotations

from invoke import Collection, Context, task

from dagops.errors import DagopsError
from dagops.operator.tasks import user_errors

ENV_HELP = "environment: a folder under live/ (dev, prod, ...)"


def _envs(env: str, all_envs: bool) -> list[str]:
    from dagops.operator import infra

    if bool(env) == bool(all_envs):
        raise DagopsError("Give either --env ENV or --all.")
    if all_envs:
        found = infra.environments()
        if not found:
            raise DagopsError("No environment roots under live/ (folders with a main.tf).")
        return found
    return [env]


@task(help={"env": ENV_HELP, "all": "every environment in turn", "upgrade": "pick newer provider versions"})
@user_errors
def init(c: Context, env: str = "", all: bool = False, upgrade: bool = False) -> None:
    """Initialise live/<env> with its backend.hcl (state bucket, key, lock file)."""
    from dagops.operator import infra

    infra.execute("init", _envs(env, all), upgrade=upgrade)


@task(help={"env": ENV_HELP, "all": "every environment in turn (a failure does not stop the others)"})
@user_errors
def plan(c: Context, env: str = "", all: bool = False) -> None:
    """Show what `infra.apply` would change in live/<env>."""
    from dagops.operator import infra

    infra.execute("plan", _envs(env, all))


@task(help={"env": ENV_HELP, "yes": "apply without asking"})
@user_errors
def apply(c: Context, env: str = "", yes: bool = False) -> None:
    """Create or update the AWS resources of live/<env>."""
    from dagops.operator import infra

    infra.execute("apply", _envs(env, False), yes=yes)


@task(help={"env": ENV_HELP, "yes": "destroy without asking (prod otherwise asks you to type its name)"})
@user_errors
def destroy(c: Context, env: str = "", yes: bool = False) -> None:
    """Destroy every AWS resource of live/<env>."""
    from dagops.operator import infra

    infra.execute("destroy", _envs(env, False), yes=yes)


@task(help={"env": ENV_HELP, "json": "print the outputs as JSON, sensitive values as null"})
@user_errors
def output(c: Context, env: str = "", json: bool = False) -> None:
    """Print the outputs of live/<env> (bucket, services, log groups, ...); secrets stay hidden."""
    from dagops.operator import infra

    infra.execute("output", _envs(env, False), json_output=json)


ns = Collection("infra")
for _task in (init, plan, apply, destroy, output):
    ns.add_task(_task)

# The original design's make targets.
ALIASES = {
    "infra-init": init,
    "infra-plan": plan,
    "infra-apply": apply,
    "infra-destroy": destroy,
    "infra-output": output,
}
