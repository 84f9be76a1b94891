"""The monthly bill of an environment, estimated from its configuration (``invoke cost --env prod``).

- ``hcl``: the root's tfvars and variable defaults, read with python-hcl2.
- ``config``: the cost-relevant configuration (tasks, database, office hours) from those values.
- ``prices``: prices.json, each price with its source and the date it was checked (or "unverified").
- ``items``: one function per AWS service's line items; ``estimate`` adds them up.
- ``freetier``: the first year under the credits and the legacy 12-month offers.
- ``report`` and ``text``: the alternatives, the goal, and what ``invoke cost`` prints.
- ``offhours``: Dagster schedules whose ticks fall outside the office hours.
"""

from __future__ import annotations

from dagops.operator.cost.config import (
    DATABASE_LEAD_MINUTES,
    MODEL_VARIABLES,
    ActiveHours,
    EnvConfig,
    Task,
    environment_config,
    environment_values,
    fargate_size,
)
from dagops.operator.cost.hcl import Opaque, parse_value, read_tfvars, read_variable_defaults
from dagops.operator.cost.items import Estimate, Item, Usage, estimate
from dagops.operator.cost.prices import PRICES_FILE, PriceTable
from dagops.operator.cost.report import (
    GOALS,
    Report,
    environments,
    parse_overrides,
    report,
    report_hours,
    working_hours_per_month,
)
from dagops.operator.cost.text import format_report

__all__ = [
    "DATABASE_LEAD_MINUTES",
    "GOALS",
    "MODEL_VARIABLES",
    "PRICES_FILE",
    "ActiveHours",
    "EnvConfig",
    "Estimate",
    "Item",
    "Opaque",
    "PriceTable",
    "Report",
    "Task",
    "Usage",
    "environment_config",
    "environment_values",
    "environments",
    "estimate",
    "fargate_size",
    "format_report",
    "parse_overrides",
    "parse_value",
    "read_tfvars",
    "read_variable_defaults",
    "report",
    "report_hours",
    "working_hours_per_month",
]
