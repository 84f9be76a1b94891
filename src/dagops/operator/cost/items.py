"""The monthly estimate: one function per AWS service's line items, and ``estimate`` that adds them up.

Hours: the services run ``service_hours`` a month and the database ``database_hours`` (all 730 without an
office-hours schedule); storage, secrets, the registry and the ALB bill every hour either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagops.operator.cost.config import EnvConfig
from dagops.operator.cost.prices import PriceTable
from dagops.runtime.sync.notify import LONG_POLL_SECONDS


@dataclass(frozen=True)
class Usage:
    """What no configuration says, assumed; every field is printed with the estimate."""

    runs_per_month: int = 300
    run_minutes: float = 3.0
    log_gb_per_service_month: float = 0.5
    log_mb_per_run: float = 2.0
    log_gb_database_month: float = 0.2
    s3_storage_gb: float = 2.0
    s3_puts_per_month: int = 20_000
    s3_gets_per_month_extra: int = 20_000
    db_data_gb: float = 1.0
    db_daily_change: float = 0.05
    ecr_storage_gb: float = 1.5
    secrets: int = 2
    alb_lcu: float = 0.1

    def lines(self) -> list[str]:
        return [
            f"runs: {self.runs_per_month} a month of {self.run_minutes:g} min each, one Fargate task per run",
            f"logs: {self.log_gb_per_service_month:g} GB a month per always-on container, "
            f"{self.log_mb_per_run:g} MB per run, {self.log_gb_database_month:g} GB of PostgreSQL log; "
            "kept for the retention period, uncompressed (upper bound); CloudWatch's always-free 5 GB "
            "ingested and 5 GB-month stored are per account (two environments in one account share them)",
            f"S3: {self.s3_storage_gb:g} GB stored (code, compute logs, assets, old versions), "
            f"{self.s3_puts_per_month:,} PUT/LIST and {self.s3_gets_per_month_extra:,} GET a month "
            "besides the sync agents' polls",
            f"RDS backups: {self.db_data_gb:g} GB of data changing {self.db_daily_change:.0%} a day; "
            "free up to the allocated storage",
            f"ECR: {self.ecr_storage_gb:g} GB of images kept; Secrets Manager: {self.secrets} secrets "
            "(RDS master password, S3 credentials); ALB (when on): "
            f"{self.alb_lcu:g} LCU average",
            "list prices: no free tier or credits (see the first-year lines), no savings plans, no taxes; "
            "data transfer out within the free 100 GB",
        ]


@dataclass(frozen=True)
class Item:
    group: str
    name: str
    quantity: float
    unit: str
    unit_usd: float
    monthly_usd: float
    note: str = ""
    key: str = ""
    variant: str | None = None
    verified: bool = True


@dataclass(frozen=True)
class Estimate:
    env: str
    region: str
    hours_on: float
    spot: bool
    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()
    database_hours: float = 0.0

    @property
    def total(self) -> float:
        return sum(item.monthly_usd for item in self.items)

    @property
    def unverified_usd(self) -> float:
        """The part of the total resting on prices not checked against their source."""
        return sum(item.monthly_usd for item in self.items if not item.verified)

    def by_group(self) -> dict[str, float]:
        groups: dict[str, float] = {}
        for item in self.items:
            groups[item.group] = groups.get(item.group, 0.0) + item.monthly_usd
        return groups


class _Bill:
    """Collects the line items of one estimate."""

    def __init__(self, prices: PriceTable) -> None:
        self.prices = prices
        self.items: list[Item] = []

    def add(
        self,
        group: str,
        name: str,
        qty: float,
        unit: str,
        key: str,
        variant: str | None = None,
        factor: float = 1.0,
        note: str = "",
        also: tuple[str, ...] = (),
    ) -> None:
        unit_usd = self.prices.usd(key, variant) * factor
        verified = all(self.prices.verified(k) for k in (key, *also))
        self.items.append(
            Item(group, name, qty, unit, unit_usd, qty * unit_usd, note, key, variant, verified)
        )


def _run_hours(usage: Usage) -> float:
    return usage.runs_per_month * max(usage.run_minutes, 1.0) / 60.0


def fargate_items(bill: _Bill, config: EnvConfig, usage: Usage, hours: float) -> None:
    spot = ("fargate_spot_discount",) if config.spot else ()
    factor = 1.0 - bill.prices.usd("fargate_spot_discount") if config.spot else 1.0
    note = "Fargate Spot (up to 70 % off)" if config.spot else "on-demand"
    sized = [(f"Fargate {t.name}", t.vcpu, t.memory_gb, t.count, t.count * hours) for t in config.tasks]
    run_vcpu, run_gb = config.run_cpu_units / 1024, config.run_memory_mib / 1024
    sized.append(("Fargate runs", run_vcpu, run_gb, 0, _run_hours(usage)))
    for group, vcpu, gb, count, task_hours in sized:
        who = f"{count} task{'s' if count > 1 else ''}" if count else "run tasks"
        bill.add(
            group,
            f"{vcpu:g} vCPU x {who}",
            vcpu * task_hours,
            "vCPU-hour",
            "fargate_arm_vcpu_hour",
            factor=factor,
            note=note,
            also=spot,
        )
        bill.add(
            group,
            f"{gb:g} GB x {who}",
            gb * task_hours,
            "GB-hour",
            "fargate_arm_gb_hour",
            factor=factor,
            note=note,
            also=spot,
        )


def rds_items(bill: _Bill, config: EnvConfig, usage: Usage, db_hours: float) -> None:
    copies = 2.0 if config.db_multi_az else 1.0
    az = "Multi-AZ" if config.db_multi_az else "Single-AZ"
    bill.add(
        "RDS",
        f"{config.db_instance_class} instance ({az})",
        db_hours,
        "instance-hour",
        "rds_postgres_instance_hour",
        config.db_instance_class,
        factor=copies,
    )
    storage = config.db_allocated_storage_gb
    bill.add(
        "RDS", f"gp3 storage {storage:g} GB ({az})", storage, "GB-month", "rds_gp3_gb_month", factor=copies
    )
    days = config.db_backup_retention_days
    backup_gb = usage.db_data_gb * (1 + usage.db_daily_change * days) if days > 0 else 0.0
    bill.add(
        "RDS",
        f"backups ~{backup_gb:.1f} GB, {days} days kept" if days > 0 else "backups off (retention 0)",
        max(0.0, backup_gb - storage),
        "GB-month",
        "rds_backup_gb_month",
        note="free up to the allocated storage",
    )


def ipv4_items(bill: _Bill, config: EnvConfig, usage: Usage, hours: float) -> None:
    if config.public_ip:
        task_ips = sum(task.count for task in config.tasks) * hours
        bill.add(
            "Public IPv4",
            "task public IPs (one per running task)",
            task_ips + _run_hours(usage),
            "address-hour",
            "public_ipv4_hour",
        )


def alb_items(bill: _Bill, config: EnvConfig, usage: Usage, month: float) -> None:
    if config.enable_alb:
        bill.add("ALB", "load balancer", month, "ALB-hour", "alb_hour")
        bill.add("ALB", "capacity units", usage.alb_lcu * month, "LCU-hour", "alb_lcu_hour")
        bill.add("Public IPv4", "ALB addresses (2 AZs)", 2 * month, "address-hour", "public_ipv4_hour")


def secrets_items(bill: _Bill, usage: Usage) -> None:
    bill.add(
        "Secrets Manager",
        f"{usage.secrets} secrets",
        usage.secrets,
        "secret-month",
        "secretsmanager_secret_month",
    )


def logs_items(bill: _Bill, config: EnvConfig, usage: Usage, hours: float, month: float) -> None:
    containers = sum(len(task.containers) * task.count for task in config.tasks)
    ingest = (containers * usage.log_gb_per_service_month + usage.log_gb_database_month) * hours / month
    ingest += usage.runs_per_month * usage.log_mb_per_run / 1024
    free_in = bill.prices.allowance("always_free", "cloudwatch_logs_ingest_gb")
    bill.add(
        "CloudWatch Logs",
        f"ingestion {ingest:.2f} GB ({containers} containers, runs, PostgreSQL log), {free_in:g} GB free",
        max(0.0, ingest - free_in),
        "GB",
        "cloudwatch_logs_ingest_gb",
    )
    # Retention 0 means "never expire": counted as the pile-up after a year.
    stored = ingest * (config.log_retention_days or 365) / 30.0
    free_kept = bill.prices.allowance("always_free", "cloudwatch_logs_storage_gb_month")
    bill.add(
        "CloudWatch Logs",
        f"storage {stored:.2f} GB ({config.log_retention_days} days kept), {free_kept:g} GB free",
        max(0.0, stored - free_kept),
        "GB-month",
        "cloudwatch_logs_storage_gb_month",
    )


def s3_items(bill: _Bill, config: EnvConfig, usage: Usage, hours: float) -> None:
    polls = len(config.locations) * hours * 3600 / config.sync_interval_s
    bill.add(
        "S3", f"storage {usage.s3_storage_gb:g} GB", usage.s3_storage_gb, "GB-month", "s3_standard_gb_month"
    )
    bill.add("S3", "PUT/LIST requests", usage.s3_puts_per_month / 1000, "1k requests", "s3_put_1k")
    bill.add(
        "S3",
        f"GET requests (sync polls every {config.sync_interval_s:g} s + other)",
        (polls + usage.s3_gets_per_month_extra) / 1000,
        "1k requests",
        "s3_get_1k",
    )


def sqs_items(bill: _Bill, config: EnvConfig, hours: float) -> None:
    # modules/sync-events: one queue per location; its agent long-polls it every 20 s while it runs.
    polls = len(config.locations) * hours * 3600 / LONG_POLL_SECONDS
    free = bill.prices.allowance("always_free", "sqs_requests")
    bill.add("SQS", f"sync event long polls {polls / 1e6:.2f} million ({free / 1e6:g} million a month free)",
             max(0.0, polls - free) / 1e6, "million", "sqs_1m_requests")  # fmt: skip


def ecr_items(bill: _Bill, usage: Usage) -> None:
    bill.add(
        "ECR",
        f"image storage {usage.ecr_storage_gb:g} GB",
        usage.ecr_storage_gb,
        "GB-month",
        "ecr_storage_gb_month",
    )


def cloudmap_items(bill: _Bill, config: EnvConfig) -> None:
    # The namespace exists in both shapes; the webserver and each code location register in it when they
    # run as services of their own (in the one-task stack they talk over localhost).
    bill.add(
        "Cloud Map", "private DNS namespace (Route 53 zone)", 1, "zone-month", "route53_hosted_zone_month"
    )
    if not (len(config.tasks) == 1 and config.tasks[0].name == "stack"):
        registered = config.tasks[0].count + len(config.locations)
        bill.add(
            "Cloud Map",
            "registered instances (webserver, code locations)",
            registered,
            "instance-month",
            "cloudmap_instance_month",
        )


def scheduler_items(bill: _Bill, config: EnvConfig) -> None:
    if not config.schedule.enabled:
        return
    # Two switches per service and two for the database, each firing at most once a day.
    fires = (2 * len(config.tasks) + 2) * 31
    free = bill.prices.allowance("always_free", "scheduler_invocations")
    bill.add(
        "EventBridge Scheduler",
        f"{fires} invocations ({free / 1e6:g} million a month free)",
        max(0.0, fires - free) / 1e6,
        "million",
        "scheduler_1m_invocations",
    )


def estimate(config: EnvConfig, prices: PriceTable | None = None, usage: Usage | None = None) -> Estimate:
    """Itemized monthly cost of ``config`` (its office-hours schedule included when enabled)."""
    prices = prices or PriceTable.load()
    usage = usage or Usage()
    month = prices.hours_per_month
    hours = config.schedule.service_hours(month)
    db_hours = config.schedule.database_hours(month)
    bill = _Bill(prices)
    fargate_items(bill, config, usage, hours)
    rds_items(bill, config, usage, db_hours)
    ipv4_items(bill, config, usage, hours)
    alb_items(bill, config, usage, month)
    secrets_items(bill, usage)
    logs_items(bill, config, usage, hours, month)
    s3_items(bill, config, usage, hours)
    sqs_items(bill, config, hours)
    ecr_items(bill, usage)
    cloudmap_items(bill, config)
    scheduler_items(bill, config)
    notes = list(config.notes)
    if config.region != prices.region:
        notes.append(f"the environment runs in {config.region} but the prices are {prices.region}'s")
    return Estimate(config.env, config.region, hours, config.spot, tuple(bill.items), tuple(notes), db_hours)


# What the tasks would need without a public IPv4 and without a NAT gateway: interface endpoints for ECR's
# API and registry, Secrets Manager, CloudWatch Logs and ECS (EcsRunLauncher), in each of the network's 2
# AZs (S3's gateway endpoint is free). Evaluated in README "What it costs", not built.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "secretsmanager", "logs", "ecs")
ENDPOINT_AZS = 2


def endpoints_alternative_usd(prices: PriceTable) -> float:
    """Monthly hourly charge of the interface endpoints that would replace the tasks' public IPv4s."""
    hours = len(INTERFACE_ENDPOINTS) * ENDPOINT_AZS * prices.hours_per_month
    return hours * prices.usd("vpc_interface_endpoint_hour")
