"""An environment's estimate with its alternatives (Spot, office hours, always on), the first-year bill
under both free-tier regimes, the goal of the original design, and the text and JSON shown by
``invoke cost``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError
from dagops.names import is_env_root
from dagops.operator.cost import hcl
from dagops.operator.cost.config import WEEKS_PER_MONTH, ActiveHours, EnvConfig, environment_config
from dagops.operator.cost.freetier import FirstYear, first_year
from dagops.operator.cost.items import Estimate, Usage, estimate
from dagops.operator.cost.prices import PriceTable
from dagops.paths import repo_root

# The original design's promise, "$15-25 a month after the free tier": dev with its office hours; prod
# with office hours on Fargate Spot. Other environments have no goal.
GOALS: dict[str, tuple[float, bool]] = {"dev": (15.0, False), "prod": (25.0, True)}


def working_hours_per_month() -> float:
    """Hours a month of the default office hours (Monday to Friday, 08:00-18:00)."""
    return ActiveHours(enabled=True).hours_per_week * WEEKS_PER_MONTH


@dataclass(frozen=True)
class Goal:
    usd: float
    spot: bool
    estimate: Estimate

    @property
    def met(self) -> bool:
        return self.estimate.total <= self.usd


@dataclass(frozen=True)
class Report:
    """An environment's estimate, and what Spot and the office-hours schedule change."""

    config: EnvConfig
    estimate: Estimate
    spot_alternative: Estimate
    paused: Estimate
    always_on: Estimate
    prices: PriceTable
    usage: Usage = field(default_factory=Usage)
    goal: Goal | None = None

    @property
    def paused_hours(self) -> ActiveHours:
        return replace(self.config.schedule, enabled=True)

    @property
    def spot_saving(self) -> float:
        """Monthly saving of running on Fargate Spot rather than on-demand (positive either way round)."""
        return abs(self.estimate.total - self.spot_alternative.total)

    @property
    def pause_saving(self) -> float:
        """What the office hours save against running around the clock."""
        return self.always_on.total - self.paused.total

    def first_year(self) -> list[FirstYear]:
        return first_year(self.estimate, self.prices)

    def to_dict(self) -> dict[str, Any]:
        def est(e: Estimate) -> dict[str, Any]:
            return {
                "hours_on": round(e.hours_on, 2),
                "database_hours": round(e.database_hours, 2),
                "fargate_spot": e.spot,
                "total_usd": round(e.total, 2),
                "unverified_usd": round(e.unverified_usd, 2),
                "by_group_usd": {k: round(v, 2) for k, v in e.by_group().items()},
                "items": [
                    {**asdict(i), "monthly_usd": round(i.monthly_usd, 4), "quantity": round(i.quantity, 4)}
                    for i in e.items
                ],
            }

        return {
            "env": self.config.env,
            "region": self.config.region,
            "schedule": {"enabled": self.config.schedule.enabled, "hours": self.config.schedule.describe()},
            "estimate": est(self.estimate),
            "fargate_spot_alternative": est(self.spot_alternative),
            "spot_saving_usd": round(self.spot_saving, 2),
            "paused_working_hours": est(self.paused),
            "always_on": est(self.always_on),
            "pause_saving_usd": round(self.pause_saving, 2),
            "goal": None
            if self.goal is None
            else {
                "usd": self.goal.usd,
                "spot": self.goal.spot,
                "met": self.goal.met,
                **est(self.goal.estimate),
            },
            "first_year_usd": {f.regime: round(f.usd, 2) for f in self.first_year()},
            "assumptions": [*self.usage.lines(), *self.estimate.notes],
            "price_table": {
                "region": self.prices.region,
                "valid_as_of": self.prices.valid_as_of,
                "kind": self.prices.kind,
                "unverified": self.prices.unverified(),
                "sources": sorted({self.prices.source(k) for k in self.prices.entries}),
            },
        }


def report(
    env: str,
    root: Path | None = None,
    overrides: dict[str, Any] | None = None,
    prices: PriceTable | None = None,
    usage: Usage | None = None,
) -> Report:
    """The estimate of ``live/<env>`` with its Spot, office-hours and always-on alternatives."""
    prices = prices or PriceTable.load()
    usage = usage or Usage()
    config = environment_config(env, root, overrides)
    on_schedule = replace(config, schedule=replace(config.schedule, enabled=True))
    around_the_clock = replace(config, schedule=replace(config.schedule, enabled=False))
    goal = None
    if env in GOALS:
        usd, spot = GOALS[env]
        goal_config = replace(on_schedule, spot=True) if spot else on_schedule
        goal = Goal(usd, spot, estimate(goal_config, prices, usage))
    return Report(
        config,
        estimate(config, prices, usage),
        estimate(replace(config, spot=not config.spot), prices, usage),
        estimate(on_schedule, prices, usage),
        estimate(around_the_clock, prices, usage),
        prices,
        usage,
        goal,
    )


def report_hours(rep: Report) -> ActiveHours:
    """The office hours a report's environment has, or is offered (schedule_enabled false)."""
    return rep.paused_hours


def environments(root: Path | None = None) -> list[str]:
    """Every environment root under live/ (bootstrap, which runs no stack, and _shared left out)."""
    live = (root or repo_root()) / "live"
    if not live.is_dir():
        return []
    return sorted(p.name for p in live.iterdir() if is_env_root(p))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["name=value", ...]`` (as given to ``-var``) into a dict of HCL values."""
    result: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name.strip()):
            raise DagopsError(f"Cannot read the override {pair!r}: write it as name=value.")
        result[name.strip()] = hcl.parse_value(raw, f"the override {pair!r}")
    return result
