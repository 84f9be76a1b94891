"""The first year's bill under AWS's two free-tier regimes.

- ``credits``: accounts opened from 2025-07-15 get USD 100 at sign-up and up to 100 more for activities,
  spendable on the whole bill within 12 months (on the paid plan; the free plan closes after 6 months).
- ``legacy_12_months``: older accounts keep 12 months of per-service offers: RDS micro instance hours
  (Single-AZ), RDS backup storage, S3, ECR, the ALB. Not Fargate, not the tasks' public IPv4 addresses
  (the free 750 hours are for EC2 instances), not Secrets Manager, Route 53 or Cloud Map. RDS storage is
  offered as General Purpose SSD (named gp2); the roots use gp3, so it is not counted as free here.

CloudWatch's always-free allowance is already in every estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagops.operator.cost.items import Estimate, Item
from dagops.operator.cost.prices import PriceTable

MICRO_CLASSES = ("db.t4g.micro", "db.t3.micro", "db.t2.micro")
LEGACY = "legacy_12_months"


@dataclass(frozen=True)
class FirstYear:
    regime: str
    usd: float
    covers: str


def _legacy_free_usd(item: Item, prices: PriceTable) -> float:
    """What the legacy 12-month offers take off one line item in a month."""

    def allowance(name: str) -> float:
        return prices.allowance(LEGACY, name)

    free_quantity = {
        # Single-AZ micro only: a Multi-AZ line's unit price is doubled and not covered.
        "rds_postgres_instance_hour": allowance("rds_micro_instance_hours")
        if item.variant in MICRO_CLASSES and "Single-AZ" in item.name
        else 0.0,
        "rds_backup_gb_month": allowance("rds_backup_gb_month"),
        "s3_standard_gb_month": allowance("s3_standard_gb_month"),
        "s3_get_1k": allowance("s3_get_requests") / 1000,
        "s3_put_1k": allowance("s3_put_requests") / 1000,
        "ecr_storage_gb_month": allowance("ecr_storage_gb_month"),
        "alb_hour": allowance("alb_hours"),
        "alb_lcu_hour": allowance("alb_lcu_hours"),
    }.get(item.key, 0.0)
    return min(item.quantity, free_quantity) * item.unit_usd


def first_year(estimate: Estimate, prices: PriceTable) -> list[FirstYear]:
    """The first 12 months' bill of ``estimate`` under each regime."""
    year = 12 * estimate.total
    credits = prices.allowance("credits", "usd")
    legacy_free = sum(_legacy_free_usd(item, prices) for item in estimate.items)
    covered = sorted({i.group for i in estimate.items if _legacy_free_usd(i, prices) > 0})
    return [
        FirstYear(
            "credits (accounts from 2025-07-15)",
            max(0.0, year - credits),
            f"USD {credits:,.0f} of credits against any line of the bill, within 12 months",
        ),
        FirstYear(
            "legacy 12-month offers (older accounts)",
            year - 12 * legacy_free,
            f"{', '.join(covered) or 'nothing on this bill'} "
            f"(USD {legacy_free:,.2f} a month); not Fargate, public IPv4, Secrets Manager, Cloud Map, "
            "RDS gp3 storage",
        ),
    ]
