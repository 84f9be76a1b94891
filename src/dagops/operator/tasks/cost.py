"""Tasks: cost, the monthly bill of an environment estimated from its configuration; cost.offhours."""

from __future__ import annotations

import json as _json

from invoke import Collection, Context, task

from dagops.errors import DagopsError
from dagops.operator.tasks import user_errors


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
    """Estimate an environment's monthly AWS bill from live/<env>: items, Spot, office hours, first year."""
    from dagops.operator import cost as cost_model
    from dagops.operator.cost.offhours import offhours as find_offhours

    if bool(env) == bool(all):
        raise DagopsError("Give either --env ENV or --all.")
    envs = cost_model.environments() if all else [env]
    if not envs:
        raise DagopsError("No environments found under live/.")
    overrides = cost_model.parse_overrides(var or [])
    reports = [cost_model.report(name, overrides=overrides) for name in envs]
    # The Dagster schedules are checked against each environment's office hours (on or offered).
    hours = {r.config.env: find_offhours(cost_model.report_hours(r)) for r in reports}
    if json:
        data = [{**r.to_dict(), "offhours": hours[r.config.env].to_dict()} for r in reports]
        print(_json.dumps(data if all else data[0], indent=2))
        return
    texts = [cost_model.format_report(r) + "\n" + "\n".join(hours[r.config.env].lines()) for r in reports]
    print("\n\n".join(texts))


@task(name="offhours", help={"env": "environment: a folder under live/ (dev, prod, ...)"})
@user_errors
def offhours(c: Context, env: str = "") -> None:
    """List the Dagster schedules whose ticks fall outside live/<env>'s office hours (they do not fire)."""
    from dagops.operator import cost as cost_model
    from dagops.operator.cost.offhours import offhours as find_offhours

    if not env:
        raise DagopsError("Give --env ENV.")
    config = cost_model.environment_config(env)
    hours = config.schedule
    if not hours.enabled:
        print(f"{env} runs around the clock (schedule_enabled = false); checked against the offered hours.")
    print("\n".join(find_offhours(hours).lines()))


ns = Collection("cost")
ns.add_task(estimate, default=True)
ns.add_task(offhours)
ALIASES: dict = {}
