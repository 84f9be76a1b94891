"""Tasks: cost, the monthly bill of an environment estimated from its configuration."""

from __future__ import annotations

import json as _json

from invoke import Collection, Context, task

from dagops.errors import DagopsError
from dagops.tasks import user_errors


@task(
    name="estimate",
    iterable=["var"],
    help={
        "env": "environment: a folder under live/ (dev, prod, ...)",
        "all": "every environment under live/, one after the other",
        "json": "print JSON instead of the table",
        "var": "override a variable as tofu's -var does, e.g. --var db_multi_az=true (repeatable)",
    },
)
@user_errors
def estimate(
    c: Context, env: str = "", all: bool = False, json: bool = False, var: list[str] | None = None
) -> None:
    """Estimate an environment's monthly AWS bill from live/<env>: itemized, with Spot and pause savings."""
    from dagops import cost as cost_model

    if bool(env) == bool(all):
        raise DagopsError("Give either --env ENV or --all.")
    envs = cost_model.environments() if all else [env]
    if not envs:
        raise DagopsError("No environments found under live/.")
    overrides = cost_model.parse_overrides(var or [])
    reports = [cost_model.report(name, overrides=overrides) for name in envs]
    if json:
        print(_json.dumps([r.to_dict() for r in reports] if all else reports[0].to_dict(), indent=2))
        return
    print("\n\n".join(cost_model.format_report(r) for r in reports))


ns = Collection("cost")
ns.add_task(estimate, default=True)
ALIASES: dict = {}
