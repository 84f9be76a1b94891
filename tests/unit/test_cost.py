"""The cost model: HCL reading, itemization, Spot, pausing, overrides and bad input."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dagops.errors import DagopsError
from dagops.operator import cost

REPO = Path(__file__).resolve().parents[2]

VARIABLES_TF = """
variable "webserver_cpu" {
  type        = number
  description = "CPU units of the webserver task"
  default     = 256
  validation {
    condition     = contains([256, 512, 1024], var.webserver_cpu)
    error_message = "Use 256, 512 or 1024."
  }
}
variable "webserver_memory" {
  type    = number
  default = 512
}
variable "db_instance_class" {
  type    = string
  default = "db.t4g.micro"
}
variable "db_allocated_storage" {
  type    = number
  default = 20
}
variable "use_fargate_spot" {
  type    = bool
  default = false
}
variable "tags" {
  type = map(string)
  default = {
    Project = "dagops" # inline comment
  }
}
variable "environment" {
  type = string
}
"""


# The real roots' other variables, declared without defaults, so `--var` may override any of them.
_OTHER_DECLARATIONS = "".join(
    f'variable "{name}" {{}}\n'
    for name in sorted(
        set(re.findall(r'^variable "([^"]+)"', (REPO / "live" / "prod" / "variables.tf").read_text(), re.M))
        - set(re.findall(r'^variable "([^"]+)"', VARIABLES_TF, re.M))
    )
)


def make_root(tmp_path: Path, tfvars: dict[str, str]) -> Path:
    """A repository with live/<env>/ roots (main.tf, variables.tf, terraform.tfvars) and a registry."""
    (tmp_path / "code_locations").mkdir()
    (tmp_path / "code_locations" / "locations.yaml").write_text(
        "locations:\n- name: main\n  source: code_locations/main\n"
    )
    for env, text in tfvars.items():
        env_dir = tmp_path / "live" / env
        env_dir.mkdir(parents=True)
        (env_dir / "main.tf").write_text('module "x" {\n  source = "../../modules/x"\n}\n')
        (env_dir / "variables.tf").write_text(VARIABLES_TF + _OTHER_DECLARATIONS)
        (env_dir / "terraform.tfvars").write_text(text)
    return tmp_path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(
        tmp_path,
        {
            "dev": 'environment = "dev"\nuse_fargate_spot = true\n',
            "prod": 'environment = "prod"\ndb_multi_az = true\nlog_retention_days = 90\n',
        },
    )


def test_hcl_reader_reads_literals_and_keeps_expressions_opaque() -> None:
    text = """
    # a comment
    name = "a \\"quoted\\" word"   // trailing comment
    n = 3
    f = -1.5
    on = true
    nothing = null
    cidrs = [
      "10.0.0.0/8",
      "1.2.3.4/32",
    ]
    obj = { a = 1, "b-c" = [true, false] }
    ref = var.other
    call = max(1, 2)
    cond = var.x ? 1 : 2
    /* a block
       comment */
    doc = <<-EOT
      line one
        line two
    EOT
    """
    values = cost.hcl.parse(text)
    assert values["name"] == 'a "quoted" word'
    assert values["n"] == 3 and values["f"] == -1.5
    assert values["on"] is True and values["nothing"] is None
    assert values["cidrs"] == ["10.0.0.0/8", "1.2.3.4/32"]
    assert values["obj"] == {"a": 1, "b-c": [True, False]}
    assert isinstance(values["ref"], cost.Opaque) and values["ref"].text == "var.other"
    assert isinstance(values["call"], cost.Opaque)
    assert isinstance(values["cond"], cost.Opaque)
    assert values["doc"] == "line one\n  line two\n"


def test_variable_defaults_skip_nested_blocks_and_variables_without_default(tmp_path: Path) -> None:
    path = tmp_path / "variables.tf"
    path.write_text(VARIABLES_TF)
    defaults = cost.read_variable_defaults([path])
    assert defaults["webserver_cpu"] == 256
    assert defaults["tags"] == {"Project": "dagops"}
    assert "environment" not in defaults


def test_bad_hcl_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "terraform.tfvars"
    path.write_text('name = "unterminated\n')
    with pytest.raises(DagopsError, match="Cannot read"):
        cost.read_tfvars(path)


def test_items_add_up_to_the_total_and_groups(root: Path) -> None:
    rep = cost.report("prod", root)
    est = rep.estimate
    assert est.total == pytest.approx(sum(i.monthly_usd for i in est.items))
    assert est.total == pytest.approx(sum(est.by_group().values()))
    for item in est.items:
        assert item.monthly_usd == pytest.approx(item.quantity * item.unit_usd)
    data = rep.to_dict()
    assert data["estimate"]["total_usd"] == pytest.approx(
        sum(i["monthly_usd"] for i in data["estimate"]["items"]), abs=0.01
    )


def test_prod_items_follow_the_configuration(root: Path) -> None:
    est = cost.report("prod", root).estimate
    groups = {i.group for i in est.items}
    assert {"Fargate webserver", "Fargate daemon", "Fargate code-main", "RDS", "Public IPv4"} <= groups
    assert {"Secrets Manager", "CloudWatch Logs", "S3", "ECR"} <= groups
    prices = cost.PriceTable.load()
    hours = prices.hours_per_month
    # 0.25 vCPU for a month, on-demand ARM64.
    web_cpu = next(i for i in est.items if i.group == "Fargate webserver" and i.unit == "vCPU-hour")
    assert web_cpu.monthly_usd == pytest.approx(0.25 * hours * prices.usd("fargate_arm_vcpu_hour"))
    # Multi-AZ bills the instance twice.
    rds = next(i for i in est.items if i.group == "RDS" and i.unit == "instance-hour")
    assert rds.monthly_usd == pytest.approx(
        2 * hours * prices.usd("rds_postgres_instance_hour", "db.t4g.micro")
    )
    # Three always-on tasks, one public IPv4 each, plus the run tasks' addresses.
    ipv4 = next(i for i in est.items if i.group == "Public IPv4")
    assert ipv4.quantity >= 3 * hours
    assert ipv4.unit_usd == 0.005


def test_spot_is_cheaper_than_on_demand(root: Path) -> None:
    dev = cost.report("dev", root)
    assert dev.estimate.spot and not dev.spot_alternative.spot
    assert dev.estimate.total < dev.spot_alternative.total
    prod = cost.report("prod", root)
    assert not prod.estimate.spot
    assert prod.spot_alternative.total < prod.estimate.total
    fargate = sum(v for g, v in prod.estimate.by_group().items() if g.startswith("Fargate"))
    discount = cost.PriceTable.load().usd("fargate_spot_discount")
    assert prod.spot_saving == pytest.approx(fargate * discount)


def test_pause_saving_is_compute_and_database_hours_only(root: Path) -> None:
    rep = cost.report("prod", root)
    prices = rep.prices
    on = cost.working_hours_per_month()
    assert on == pytest.approx(50 * 52 / 12)
    off_share = 1 - on / prices.hours_per_month
    hourly_groups = ("Fargate webserver", "Fargate daemon", "Fargate code-main")
    hourly = sum(v for g, v in rep.estimate.by_group().items() if g in hourly_groups)
    rds_instance = next(i for i in rep.estimate.items if i.unit == "instance-hour").monthly_usd
    task_ips = 3 * prices.hours_per_month * prices.usd("public_ipv4_hour")
    logs = sum(i.monthly_usd for i in rep.estimate.items if i.group == "CloudWatch Logs")
    polls = next(i for i in rep.estimate.items if i.group == "S3" and "GET" in i.name).monthly_usd
    # The database starts DATABASE_LEAD_MINUTES before the services on each of the 5 days.
    db_on = on + 5 * cost.DATABASE_LEAD_MINUTES / 60 * 52 / 12
    assert rep.paused.database_hours == pytest.approx(db_on)
    db_off_share = 1 - db_on / prices.hours_per_month
    expected = (hourly + task_ips) * off_share + rds_instance * db_off_share
    # Logs and sync polls also shrink with the hours on; they are small but counted.
    assert rep.pause_saving > expected
    assert rep.pause_saving < expected + logs + polls
    # Storage keeps billing.
    storage = [i for i in rep.paused.items if i.unit == "GB-month" and i.group in ("RDS", "S3", "ECR")]
    base = {(i.group, i.name): i.monthly_usd for i in rep.estimate.items}
    for item in storage:
        assert item.monthly_usd == base[(item.group, item.name)]


def test_tfvars_override_changes_the_figure(root: Path) -> None:
    base = cost.report("prod", root).estimate.total
    tfvars = root / "live" / "prod" / "terraform.tfvars"
    tfvars.write_text(tfvars.read_text() + 'db_instance_class = "db.t4g.small"\nwebserver_cpu = 512\n')
    bigger = cost.report("prod", root).estimate
    prices = cost.PriceTable.load()
    hours = prices.hours_per_month
    delta_db = (
        2
        * hours
        * (
            prices.usd("rds_postgres_instance_hour", "db.t4g.small")
            - prices.usd("rds_postgres_instance_hour", "db.t4g.micro")
        )
    )
    delta_cpu = 0.25 * hours * prices.usd("fargate_arm_vcpu_hour")
    assert bigger.total == pytest.approx(base + delta_db + delta_cpu)


def test_command_line_overrides_win_over_tfvars(root: Path) -> None:
    on = cost.report("prod", root)
    off = cost.report("prod", root, overrides=cost.parse_overrides(["db_multi_az=false"]))
    assert off.config.db_multi_az is False
    assert off.estimate.total < on.estimate.total
    with_alb = cost.report("prod", root, overrides=cost.parse_overrides(["enable_alb=true"]))
    assert "ALB" in with_alb.estimate.by_group()
    assert "ALB" not in on.estimate.by_group()


def test_single_task_dev_is_one_task_sized_to_hold_its_containers(root: Path) -> None:
    rep = cost.report("dev", root, overrides={"single_task": True})
    assert [t.name for t in rep.config.tasks] == ["stack"]
    task = rep.config.tasks[0]
    assert (task.cpu_units, task.memory_mib) == cost.fargate_size(768, 1536) == (1024, 2048)
    cloud_map = [i.name for i in rep.estimate.items if i.group == "Cloud Map"]
    assert cloud_map == ["private DNS namespace (Route 53 zone)"]
    stack_set = cost.report(
        "dev", root, overrides={"single_task": True, "stack_cpu": 512, "stack_memory": 1024}
    )
    assert (stack_set.config.tasks[0].cpu_units, stack_set.config.tasks[0].memory_mib) == (512, 1024)
    assert stack_set.estimate.total < rep.estimate.total


def test_code_locations_each_get_a_service(root: Path) -> None:
    (root / "code_locations" / "locations.yaml").write_text(
        "locations:\n- name: main\n  source: code_locations/main\n- name: sales\n  source: repos/sales\n"
    )
    groups = cost.report("prod", root).estimate.by_group()
    assert "Fargate code-main" in groups and "Fargate code-sales" in groups


def test_bad_environment_and_bad_values_are_clear_errors(root: Path) -> None:
    with pytest.raises(DagopsError, match="Unknown environment 'staging'"):
        cost.report("staging", root)
    with pytest.raises(DagopsError, match="Invalid environment name"):
        cost.report("../prod", root)
    with pytest.raises(DagopsError, match=r"Unknown environment .bootstrap."):
        cost.report("bootstrap", root)
    with pytest.raises(DagopsError, match="db_multi_az must be true or false"):
        cost.report("prod", root, overrides={"db_multi_az": "perhaps"})
    with pytest.raises(DagopsError, match=r"no .* price for .db\.x9\.huge."):
        cost.report("prod", root, overrides={"db_instance_class": "db.x9.huge"})
    with pytest.raises(DagopsError, match="name=value"):
        cost.parse_overrides(["novalue"])


def test_non_literal_setting_falls_back_and_says_so(root: Path) -> None:
    rep = cost.report("prod", root, overrides={"webserver_cpu": cost.Opaque("local.cpu")})
    assert rep.config.tasks[0].cpu_units == 256
    assert any("local.cpu" in note for note in rep.estimate.notes)


def test_price_table_states_region_date_and_source_for_every_price() -> None:
    data = json.loads(cost.PRICES_FILE.read_text())
    assert data["region"] == "ap-southeast-2"
    assert data["valid_as_of"]
    for key, entry in data["prices"].items():
        assert entry["source"].startswith("https://aws.amazon.com/"), key
        value = entry.get("usd", entry.get("fraction"))
        numbers = value.values() if isinstance(value, dict) else [value]
        assert all(isinstance(n, int | float) and n > 0 and math.isfinite(n) for n in numbers), key


def test_report_text_shows_items_total_savings_and_the_price_date(root: Path) -> None:
    rep = cost.report("dev", root)
    text = cost.format_report(rep)
    assert f"{rep.estimate.total:,.2f}" in text
    assert "Fargate Spot saves" in text
    assert "Paused outside working hours" in text
    assert rep.prices.valid_as_of in text and "ap-southeast-2" in text
    assert "Assumptions:" in text


def test_invoke_cost_task_end_to_end(root: Path) -> None:
    env = {"DAGOPS_ROOT": str(root), "PATH": "/usr/bin:/bin"}
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(Path(__file__).parents[2])]
    ok = subprocess.run([*invoke, "cost", "--env", "prod", "--json"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["env"] == "prod"
    every = subprocess.run([*invoke, "cost", "--all", "--json"], env=env, capture_output=True, text=True)
    assert [r["env"] for r in json.loads(every.stdout)] == ["dev", "prod"]
    bad = subprocess.run([*invoke, "cost", "--env", "nope"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "Unknown environment 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_repository_roots_declare_every_variable_the_model_reads() -> None:
    from dagops.paths import repo_root

    live = repo_root() / "live"
    for env in cost.environments():
        declared = cost.read_variable_defaults(sorted((live / env).glob("*.tf")))
        missing = [name for name in cost.MODEL_VARIABLES if name not in declared]
        assert not missing, f"live/{env} lacks {missing}"


def test_the_repository_environments_estimate_without_guesses() -> None:
    envs = cost.environments()
    assert {"dev", "prod"} <= set(envs)
    dev, prod = cost.report("dev"), cost.report("prod")
    for rep in (dev, prod):
        assert not [n for n in rep.estimate.notes if "not a literal" in n]
        assert rep.estimate.total > 0
    # dev is the cheap shape: one task on Spot; prod runs separate on-demand services.
    assert [t.name for t in dev.config.tasks] == ["stack"] and dev.config.spot
    assert {"webserver", "daemon"} <= {t.name for t in prod.config.tasks} and not prod.config.spot
    assert dev.estimate.total < prod.estimate.total


def test_backups_bill_only_beyond_the_allocated_storage(root: Path) -> None:
    big = cost.Usage(db_data_gb=30.0, db_daily_change=0.1)
    rep = cost.report("prod", root, overrides={"db_backup_retention_days": 10}, usage=big)
    backups = next(i for i in rep.estimate.items if i.name.startswith("backups"))
    # 30 GB + 10 days x 3 GB = 60 GB kept; 20 GB free (the allocated storage).
    assert backups.quantity == pytest.approx(40.0)
    off = cost.report("prod", root, overrides={"db_backup_retention_days": 0}, usage=big)
    assert next(i for i in off.estimate.items if i.name.startswith("backups")).monthly_usd == 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("webserver_cpu", "abc", "webserver_cpu must be a number"),
        ("webserver_cpu", 0, "positive number of CPU units"),
        ("webserver_memory", [512], "webserver_memory must be a number"),
        ("db_allocated_storage", -5, "db_allocated_storage must be more than 0"),
        ("webserver_min_count", 1.5, "whole number"),
        ("log_retention_days", -1, "whole number of 0 or more"),
        ("sync_interval_seconds", 0, "sync_interval_seconds must be more than 0"),
        ("single_task", 3, "single_task must be true or false"),
        ("enable_alb", "yes", "enable_alb must be true or false"),
    ],
)
def test_bad_values_are_one_sentence(root: Path, name: str, value: object, message: str) -> None:
    with pytest.raises(DagopsError, match=message):
        cost.report("prod", root, overrides={name: value})


def test_a_bad_value_in_tfvars_fails_the_command_without_a_traceback(root: Path) -> None:
    (root / "live" / "prod" / "terraform.tfvars").write_text('webserver_cpu = "lots"\n')
    env = {"DAGOPS_ROOT": str(root), "PATH": "/usr/bin:/bin"}
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(Path(__file__).parents[2])]
    bad = subprocess.run([*invoke, "cost", "--env", "prod"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "webserver_cpu must be a number" in bad.stderr
    assert "Traceback" not in bad.stderr


# ---- office hours, prices a user can trust, the first year, the goal ----


def test_office_hours_from_tfvars_price_services_and_database_hours(root: Path) -> None:
    tfvars = root / "live" / "dev" / "terraform.tfvars"
    tfvars.write_text(
        tfvars.read_text()
        + 'schedule_enabled = true\nschedule_days = ["MON", "WED"]\nschedule_start = "09:00"\n'
        + 'schedule_stop = "17:00"\nschedule_time_zone = "Europe/Berlin"\n'
    )
    rep = cost.report("dev", root)
    hours = rep.config.schedule
    assert hours == cost.ActiveHours(True, ("MON", "WED"), "09:00", "17:00", "Europe/Berlin")
    service_hours = 2 * 8 * 52 / 12
    database_hours = (2 * 8 + 2 * cost.DATABASE_LEAD_MINUTES / 60) * 52 / 12
    assert rep.estimate.hours_on == pytest.approx(service_hours)
    assert rep.estimate.database_hours == pytest.approx(database_hours)
    task = rep.config.tasks[0]
    cpu = next(i for i in rep.estimate.items if i.group == f"Fargate {task.name}" and i.unit == "vCPU-hour")
    assert cpu.quantity == pytest.approx(task.vcpu * task.count * service_hours)
    rds = next(i for i in rep.estimate.items if i.unit == "instance-hour")
    assert rds.quantity == pytest.approx(database_hours)
    # Storage bills every hour either way; around the clock is the estimate without the schedule.
    assert rep.always_on.hours_on == rep.prices.hours_per_month
    storage = next(i for i in rep.estimate.items if i.name.startswith("gp3 storage"))
    assert storage.monthly_usd == next(i for i in rep.always_on.items if i.name == storage.name).monthly_usd
    assert rep.pause_saving == pytest.approx(rep.always_on.total - rep.estimate.total)
    assert "EventBridge Scheduler" in rep.estimate.by_group()
    text = cost.format_report(rep)
    assert "office hours MON,WED 09:00-17:00 Europe/Berlin" in text.splitlines()[0]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("schedule_start", "8:00", "schedule_start must be a 24-hour time such as 08:00"),
        ("schedule_stop", "24:00", "schedule_stop must be a 24-hour time"),
        ("schedule_days", ["MONDAY"], "schedule_days must list at least one of MON"),
        ("schedule_days", [], "schedule_days must list at least one of MON"),
        ("schedule_enabled", "sometimes", "schedule_enabled must be true or false"),
        ("schedule_start", "00:05", "schedule_start must be 00:15 or later"),
    ],
)
def test_bad_office_hours_are_one_sentence(root: Path, name: str, value: object, message: str) -> None:
    with pytest.raises(DagopsError, match=message):
        cost.report("dev", root, overrides={name: value})


def test_office_hours_must_end_after_they_start(root: Path) -> None:
    with pytest.raises(DagopsError, match=r"schedule_stop \(07:00\) must be later in the day"):
        cost.report("dev", root, overrides={"schedule_start": "08:00", "schedule_stop": "07:00"})


def test_variables_no_root_declares_are_refused_not_guessed(root: Path) -> None:
    for name in ("fargate_spot", "dev_single_task", "single_task_cpu", "webserver_desired_count",
                 "run_task_cpu", "backup_retention_period", "sync_interval", "aws_region"):  # fmt: skip
        with pytest.raises(DagopsError, match=f"declares no variable '{name}'"):
            cost.report("dev", root, overrides=cost.parse_overrides([f"{name}=1"]))
    # A tfvars setting of such a name changes nothing: only declared variables are read.
    tfvars = root / "live" / "prod" / "terraform.tfvars"
    base = cost.report("prod", root).estimate.total
    tfvars.write_text(tfvars.read_text() + 'fargate_spot = true\naws_region = "us-east-1"\n')
    assert cost.report("prod", root).estimate.total == base


def test_the_database_lead_is_the_schedule_modules_default() -> None:
    defaults = cost.read_variable_defaults([REPO / "modules" / "schedule" / "variables.tf"])
    assert defaults["database_lead_minutes"] == cost.DATABASE_LEAD_MINUTES


def test_every_price_says_when_it_was_checked_or_that_it_is_unverified() -> None:
    data = json.loads(cost.PRICES_FILE.read_text())
    for key, entry in data["prices"].items():
        checked = entry["checked"]
        assert checked == "unverified" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", checked), key
        if checked != "unverified":
            assert entry.get("evidence"), f"{key}: a checked price says what it was checked against"
    table = cost.PriceTable.load()
    assert table.verified("public_ipv4_hour") and table.verified("fargate_arm_vcpu_hour")
    assert "rds_postgres_instance_hour" in table.unverified()


def test_a_price_without_a_checked_field_is_refused(tmp_path: Path) -> None:
    data = json.loads(cost.PRICES_FILE.read_text())
    data["prices"]["s3_put_1k"]["checked"] = "last week"
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DagopsError, match="'s3_put_1k' must say when it was checked"):
        cost.PriceTable.load(path)


def test_totals_resting_on_unverified_prices_are_marked(root: Path, tmp_path: Path) -> None:
    rep = cost.report("prod", root)
    unverified = sum(i.monthly_usd for i in rep.estimate.items if not i.verified)
    assert rep.estimate.unverified_usd == pytest.approx(unverified) and unverified > 0
    rds = next(i for i in rep.estimate.items if i.unit == "instance-hour")
    assert not rds.verified
    ipv4 = next(i for i in rep.estimate.items if i.group == "Public IPv4")
    assert ipv4.verified
    text = cost.format_report(rep)
    assert f"{rep.estimate.total:,.2f}*" in text
    assert f"{unverified:,.2f} of the total rests on such prices" in text
    assert rep.to_dict()["estimate"]["unverified_usd"] == pytest.approx(unverified, abs=0.01)
    # With every price checked, no mark.
    data = json.loads(cost.PRICES_FILE.read_text())
    for entry in data["prices"].values():
        entry["checked"] = "2026-12-04"
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    checked = cost.report("prod", root, prices=cost.PriceTable.load(path))
    assert checked.estimate.unverified_usd == 0
    assert f"{checked.estimate.total:,.2f}*" not in cost.format_report(checked)


def test_spot_is_said_to_be_up_to_70_percent(root: Path) -> None:
    assert "'up to 70 %'" in cost.format_report(cost.report("dev", root))
    assert "'up to 70 %'" in cost.format_report(cost.report("prod", root))


def test_cloudwatch_always_free_allowance_is_taken_off(root: Path) -> None:
    noisy = cost.Usage(log_gb_per_service_month=4.0)
    rep = cost.report("prod", root, usage=noisy)
    ingest = next(i for i in rep.estimate.items if i.group == "CloudWatch Logs" and i.unit == "GB")
    # 3 containers x 4 GB + 0.2 GB PostgreSQL + 300 runs x 2 MB, less the free 5 GB.
    assert ingest.quantity == pytest.approx(3 * 4 + 0.2 + 300 * 2 / 1024 - 5)
    stored = next(i for i in rep.estimate.items if i.group == "CloudWatch Logs" and i.unit == "GB-month")
    assert stored.quantity == pytest.approx((3 * 4 + 0.2 + 300 * 2 / 1024) * 90 / 30 - 5)  # 90 days kept
    quiet = cost.report("prod", root)
    assert (
        next(i for i in quiet.estimate.items if i.group == "CloudWatch Logs" and i.unit == "GB").quantity == 0
    )


def test_first_year_under_both_free_tier_regimes(root: Path) -> None:
    rep = cost.report("dev", root, overrides={"db_backup_retention_days": 7})
    prices = rep.prices
    credits, legacy = rep.first_year()
    assert credits.usd == pytest.approx(max(0.0, 12 * rep.estimate.total - 200))
    rds = next(i for i in rep.estimate.items if i.unit == "instance-hour")
    s3 = {i.key: i for i in rep.estimate.items if i.group == "S3"}
    ecr = next(i for i in rep.estimate.items if i.group == "ECR")
    free = (
        min(rds.quantity, 750) * rds.unit_usd
        + min(s3["s3_standard_gb_month"].quantity, 5) * s3["s3_standard_gb_month"].unit_usd
        + min(s3["s3_get_1k"].quantity, 20) * s3["s3_get_1k"].unit_usd
        + min(s3["s3_put_1k"].quantity, 2) * s3["s3_put_1k"].unit_usd
        + min(ecr.quantity, 0.5) * ecr.unit_usd
    )
    assert legacy.usd == pytest.approx(12 * (rep.estimate.total - free))
    assert "not Fargate, public IPv4" in legacy.covers
    # Multi-AZ instance hours are not in the legacy offer.
    multi = cost.report("prod", root)
    _, multi_legacy = multi.first_year()
    multi_rds = next(i for i in multi.estimate.items if i.unit == "instance-hour")
    assert multi_legacy.usd > 12 * multi.estimate.total - 12 * multi_rds.monthly_usd
    assert prices.allowance("credits", "usd") == 200
    text = cost.format_report(rep)
    assert "credits (accounts from 2025-07-15)" in text and "legacy 12-month offers" in text


def test_the_committed_environments_meet_the_original_goal() -> None:
    dev, prod = cost.report("dev"), cost.report("prod")
    assert dev.config.schedule.enabled and not prod.config.schedule.enabled
    assert dev.goal is not None and prod.goal is not None
    # dev: its committed settings, office hours on; prod: office hours and Fargate Spot.
    assert dev.goal.estimate.total == pytest.approx(dev.estimate.total)
    assert dev.goal.usd == 15 and dev.goal.met
    assert prod.goal.usd == 25 and prod.goal.spot and prod.goal.met
    assert prod.goal.estimate.spot and prod.goal.estimate.hours_on < prod.prices.hours_per_month
    assert "Goal (original design" in cost.format_report(prod) and ", met." in cost.format_report(prod)


def _readme_cost_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## What it costs")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_cost_figures_are_what_invoke_cost_prints() -> None:
    section = _readme_cost_section()
    for env in ("dev", "prod"):
        rep = cost.report(env)
        expected = {
            "as committed": rep.estimate.total,
            "office hours": rep.paused.total,
            "around the clock": rep.always_on.total,
        }
        assert rep.goal is not None
        expected["goal"] = rep.goal.estimate.total
        row = next(line for line in section.splitlines() if line.startswith(f"| {env} |"))
        for what, value in expected.items():
            assert f"{value:,.2f}" in row, f"README's {env} row lacks the {what} figure {value:,.2f}: {row}"
        # The bill by item: one row per group, a column per environment and shape.
        for name in ("always_on", "paused"):
            for group, value in getattr(rep, name).by_group().items():
                item_row = next((ln for ln in section.splitlines() if ln.startswith(f"| {group} |")), "")
                assert f"{value:,.2f}" in item_row, f"README's {group} row lacks {env} {name} {value:,.2f}"
