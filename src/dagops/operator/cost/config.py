"""The cost-relevant configuration of an environment root: ``live/<env>/*.tf`` variable defaults overlaid
by ``terraform.tfvars`` and ``*.auto.tfvars`` (and ``--var`` overrides), plus the code-location registry.

Only variables the roots declare are read (``MODEL_VARIABLES``; a test keeps the roots and this list in
step). A value that is not a literal falls back to the model's default, and the estimate says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError
from dagops.names import validate_env_name
from dagops.operator.cost import hcl
from dagops.operator.cost.hcl import Opaque
from dagops.paths import repo_root

WEEKS_PER_MONTH = 52.0 / 12.0
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# modules/schedule starts the database this long before the services (its database_lead_minutes).
DATABASE_LEAD_MINUTES = 15

# The variables of a live root that the model reads (tests check that the roots declare them).
MODEL_VARIABLES = (
    "region",
    "single_task",
    "use_fargate_spot",
    "webserver_cpu",
    "webserver_memory",
    "daemon_cpu",
    "daemon_memory",
    "code_location_cpu",
    "code_location_memory",
    "stack_cpu",
    "stack_memory",
    "run_cpu",
    "run_memory",
    "webserver_min_count",
    "webserver_max_count",
    "db_instance_class",
    "db_allocated_storage",
    "db_multi_az",
    "db_backup_retention_days",
    "log_retention_days",
    "enable_alb",
    "sync_interval_seconds",
    "schedule_enabled",
    "schedule_days",
    "schedule_start",
    "schedule_stop",
    "schedule_time_zone",
)


@dataclass(frozen=True)
class Task:
    """An always-on ECS service (or the single dev task): its size and how many copies run."""

    name: str
    cpu_units: int
    memory_mib: int
    count: int
    containers: tuple[str, ...]

    @property
    def vcpu(self) -> float:
        return self.cpu_units / 1024

    @property
    def memory_gb(self) -> float:
        return self.memory_mib / 1024


@dataclass(frozen=True)
class ActiveHours:
    """The office-hours schedule (modules/schedule): services on from start to stop on days."""

    enabled: bool
    days: tuple[str, ...] = DAYS[:5]
    start: str = "08:00"
    stop: str = "18:00"
    time_zone: str = "UTC"

    @property
    def hours_per_week(self) -> float:
        return len(self.days) * (_minutes(self.stop) - _minutes(self.start)) / 60.0

    def service_hours(self, month_hours: float) -> float:
        """Hours a month the services run: every hour when disabled."""
        return min(month_hours, self.hours_per_week * WEEKS_PER_MONTH) if self.enabled else month_hours

    def database_hours(self, month_hours: float) -> float:
        """Hours a month the database runs: the services' hours plus its earlier start each active day."""
        if not self.enabled:
            return month_hours
        lead = len(self.days) * DATABASE_LEAD_MINUTES / 60.0
        return min(month_hours, (self.hours_per_week + lead) * WEEKS_PER_MONTH)

    def describe(self) -> str:
        return f"{','.join(self.days)} {self.start}-{self.stop} {self.time_zone}"


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class EnvConfig:
    env: str
    region: str
    tasks: tuple[Task, ...]
    run_cpu_units: int
    run_memory_mib: int
    spot: bool
    db_instance_class: str
    db_allocated_storage_gb: float
    db_multi_az: bool
    db_backup_retention_days: int
    log_retention_days: int
    enable_alb: bool
    public_ip: bool
    sync_interval_s: float
    locations: tuple[str, ...]
    schedule: ActiveHours
    notes: tuple[str, ...] = ()


# ---- values, checked: each bad value is one sentence naming the variable ----


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise DagopsError(f"{name} must be a number, not {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DagopsError(f"{name} must be a number, not {value!r}.") from None
    if not math.isfinite(number):
        raise DagopsError(f"{name} must be a finite number, not {value!r}.")
    return number


def _positive(value: Any, name: str) -> float:
    number = _number(value, name)
    if number <= 0:
        raise DagopsError(f"{name} must be more than 0, not {value!r}.")
    return number


def _int(value: Any, name: str) -> int:
    """A whole number of at least 0."""
    number = _number(value, name)
    if number < 0 or number != int(number):
        raise DagopsError(f"{name} must be a whole number of 0 or more, not {value!r}.")
    return int(number)


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise DagopsError(f"{name} must be true or false, not {value!r}.")


def _cpu_units(value: Any, name: str) -> int:
    """Fargate CPU in units (256 = 0.25 vCPU); a value under 32 is taken as vCPUs."""
    number = _number(value, name)
    if number <= 0:
        raise DagopsError(f"{name} must be a positive number of CPU units, not {value!r}.")
    return int(number * 1024) if number < 32 else int(number)


def _memory_mib(value: Any, name: str) -> int:
    """Fargate memory in MiB; a value under 128 is taken as GB."""
    number = _number(value, name)
    if number <= 0:
        raise DagopsError(f"{name} must be a positive amount of memory in MiB, not {value!r}.")
    return int(number * 1024) if number < 128 else int(number)


def _time(value: Any, name: str) -> str:
    text = str(value) if isinstance(value, str) else ""
    parts = text.split(":")
    ok = len(parts) == 2 and all(len(p) == 2 and p.isdigit() for p in parts)
    if not ok or int(parts[0]) > 23 or int(parts[1]) > 59:
        raise DagopsError(f"{name} must be a 24-hour time such as 08:00, not {value!r}.")
    return text


def _days(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(d not in DAYS for d in value):
        raise DagopsError(f"{name} must list at least one of {', '.join(DAYS)}, not {value!r}.")
    return tuple(dict.fromkeys(value))


# Fargate's CPU units and the memory (MiB) each allows.
_FARGATE_SIZES: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}


def fargate_size(cpu_units: int, memory_mib: int) -> tuple[int, int]:
    """The smallest Fargate task size with at least ``cpu_units`` and ``memory_mib``."""
    for cpu, memories in _FARGATE_SIZES.items():
        if cpu < cpu_units:
            continue
        for mem in memories:
            if mem >= memory_mib:
                return cpu, mem
    raise DagopsError(f"No Fargate task size holds {cpu_units} CPU units and {memory_mib} MiB.")


# ---- reading a root ----


def environment_values(env: str, root: Path | None = None) -> dict[str, Any]:
    """Variable defaults of ``live/<env>`` overlaid by its terraform.tfvars and *.auto.tfvars."""
    root = root or repo_root()
    live = root / "live"
    validate_env_name(env, live)
    env_dir = live / env
    values = hcl.read_variable_defaults(sorted(env_dir.glob("*.tf")))
    for path in [env_dir / "terraform.tfvars", *sorted(env_dir.glob("*.auto.tfvars"))]:
        if path.is_file():
            values.update(hcl.read_tfvars(path))
    return values


class _Values:
    """The root's values with the model's defaults; a non-literal value falls back and is noted."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.notes: list[str] = []

    def get(self, name: str, default: Any) -> Any:
        value = self.values.get(name)
        if isinstance(value, Opaque):
            self.notes.append(f"{name} = {value.text} is not a literal; assumed {default!r}")
            return default
        return default if value is None else value


def _location_names(values: dict[str, Any], root: Path, notes: list[str]) -> tuple[str, ...]:
    """Code locations from the registry (the roots read it the same way)."""
    from dagops import registry

    try:
        return tuple(loc.name for loc in registry.load(root))
    except DagopsError:
        notes.append("no code-location registry found; assumed one location, main")
        return ("main",)


def _tasks(v: _Values, locations: tuple[str, ...]) -> tuple[Task, ...]:
    sizes = {
        part: (
            _cpu_units(v.get(f"{part}_cpu", 256), f"{part}_cpu"),
            _memory_mib(v.get(f"{part}_memory", 512), f"{part}_memory"),
        )
        for part in ("webserver", "daemon", "code_location")
    }
    if _bool(v.get("single_task", False), "single_task"):
        containers = ("webserver", "daemon", *(f"code-{loc}" for loc in locations))
        want_cpu = sizes["webserver"][0] + sizes["daemon"][0] + sizes["code_location"][0] * len(locations)
        want_mem = sizes["webserver"][1] + sizes["daemon"][1] + sizes["code_location"][1] * len(locations)
        cpu_set, mem_set = v.get("stack_cpu", None), v.get("stack_memory", None)
        cpu = _cpu_units(cpu_set, "stack_cpu") if cpu_set is not None else None
        mem = _memory_mib(mem_set, "stack_memory") if mem_set is not None else None
        if cpu is None or mem is None:
            cpu, mem = fargate_size(cpu or want_cpu, mem or want_mem)
            v.notes.append(
                f"single task sized {cpu} CPU / {mem} MiB: the smallest Fargate size that holds "
                "its containers' sizes"
            )
        return (Task("stack", cpu, mem, 1, containers),)
    webserver_count = _int(v.get("webserver_min_count", 1), "webserver_min_count")
    max_count = v.get("webserver_max_count", None)
    if max_count is not None and _int(max_count, "webserver_max_count") > webserver_count:
        v.notes.append(
            f"webserver counted at its minimum of {webserver_count} task(s); autoscaling up to "
            f"{_int(max_count, 'webserver_max_count')} adds its share only while scaled out"
        )
    return (
        Task("webserver", *sizes["webserver"], webserver_count, ("webserver",)),
        Task("daemon", *sizes["daemon"], 1, ("daemon",)),
        *(Task(f"code-{loc}", *sizes["code_location"], 1, (f"code-{loc}",)) for loc in locations),
    )


def _schedule(v: _Values) -> ActiveHours:
    hours = ActiveHours(
        enabled=_bool(v.get("schedule_enabled", False), "schedule_enabled"),
        days=_days(v.get("schedule_days", list(DAYS[:5])), "schedule_days"),
        start=_time(v.get("schedule_start", "08:00"), "schedule_start"),
        stop=_time(v.get("schedule_stop", "18:00"), "schedule_stop"),
        time_zone=str(v.get("schedule_time_zone", "UTC")),
    )
    if _minutes(hours.start) < DATABASE_LEAD_MINUTES:
        raise DagopsError(
            f"schedule_start must be 00:{DATABASE_LEAD_MINUTES:02d} or later: the database starts "
            f"{DATABASE_LEAD_MINUTES} minutes earlier, the same day."
        )
    if _minutes(hours.stop) <= _minutes(hours.start):
        raise DagopsError(f"schedule_stop ({hours.stop}) must be later in the day than schedule_start.")
    return hours


def _check_overrides(env: str, root: Path, overrides: dict[str, Any]) -> None:
    declared = hcl.declared_variables(sorted((root / "live" / env).glob("*.tf")))
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise DagopsError(
            f"live/{env} declares no variable {', '.join(repr(n) for n in unknown)}; "
            "--var takes the names in its variables.tf."
        )


def environment_config(
    env: str, root: Path | None = None, overrides: dict[str, Any] | None = None
) -> EnvConfig:
    """The cost-relevant configuration of ``live/<env>``, with ``overrides`` applied like ``-var``."""
    root = root or repo_root()
    values = environment_values(env, root)
    if overrides:
        _check_overrides(env, root, overrides)
        values.update(overrides)
    v = _Values(values)
    locations = _location_names(values, root, v.notes)
    tasks = _tasks(v, locations)
    return EnvConfig(
        env=env,
        region=str(v.get("region", "ap-southeast-2")),
        tasks=tasks,
        run_cpu_units=_cpu_units(v.get("run_cpu", 256), "run_cpu"),
        run_memory_mib=_memory_mib(v.get("run_memory", 512), "run_memory"),
        spot=_bool(v.get("use_fargate_spot", False), "use_fargate_spot"),
        db_instance_class=str(v.get("db_instance_class", "db.t4g.micro")),
        db_allocated_storage_gb=_positive(v.get("db_allocated_storage", 20), "db_allocated_storage"),
        db_multi_az=_bool(v.get("db_multi_az", False), "db_multi_az"),
        db_backup_retention_days=_int(v.get("db_backup_retention_days", 7), "db_backup_retention_days"),
        log_retention_days=_int(v.get("log_retention_days", 30), "log_retention_days"),
        enable_alb=_bool(v.get("enable_alb", False), "enable_alb"),
        # Every task gets a public IPv4 (modules/dagster: assign_public_ip = true; no NAT gateway).
        public_ip=True,
        sync_interval_s=_positive(v.get("sync_interval_seconds", 60), "sync_interval_seconds"),
        locations=locations,
        schedule=_schedule(v),
        notes=tuple(v.notes),
    )
