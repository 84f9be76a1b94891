"""Values a user can get wrong are refused by `plan` with a message that says what to do.

The plans run against a closed loopback port: variable validation happens before any AWS call, and
nothing can reach a real account.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tfharness import MOTO_ACCOUNT, Tofu, copy_tree, write_override

from dagops.ports import free_port

BAD_VALUES = {
    # variable: (value as -var gives it, part of the expected message)
    "environment": ("Prod", "environment must be 1-16 characters"),
    "ui_allowed_cidrs": ('["0.0.0.0/0"]', "must not contain 0.0.0.0/0"),
    "vpc_cidr": ("10.0.0.0/8", "vpc_cidr must be an IPv4 CIDR block between /16 and /23"),
    "webserver_memory": ("4096", "webserver_memory does not fit webserver_cpu on Fargate"),
    "daemon_cpu": ("300", "daemon_cpu must be a Fargate size"),
    "run_memory": ("8192", "run_memory does not fit run_cpu on Fargate"),
    "webserver_max_count": ("0", "webserver_max_count must be between webserver_min_count and 10"),
    "db_instance_class": ("t4g.micro", "db_instance_class must be an RDS class"),
    "db_allocated_storage": ("5", "db_allocated_storage must be between 20 and 16384 GB"),
    "log_retention_days": ("10", "log_retention_days must be a value CloudWatch accepts"),
    "allowed_account_ids": ('["12345"]', "allowed_account_ids must list 12-digit AWS account ids"),
    "image_tag": ("bad tag", "image_tag must be a Docker tag"),
}


def closed_port() -> str:
    """An endpoint nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


def plan(tofu: Tofu, root: Path, *variables: str) -> str:
    proc = tofu.run("plan", "-input=false", "-no-color", "-lock=false", *variables, cwd=root, check=False)
    assert proc.returncode != 0, "plan accepted values it must refuse"
    # Messages wrap at the terminal width; compare with whitespace collapsed.
    return " ".join((proc.stdout + proc.stderr).split())


@pytest.fixture(scope="module")
def refused(tofu: Tofu, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One plan of live/prod with every bad value at once: each validation reports its own error."""
    base = tmp_path_factory.mktemp("validation")
    root = copy_tree(base) / "live" / "prod"
    write_override(root, closed_port(), base / "state.tfstate")
    tofu.run("init", "-input=false", "-no-color", cwd=root)
    return plan(tofu, root, *(f"-var={name}={value}" for name, (value, _) in BAD_VALUES.items()))


@pytest.mark.parametrize("variable", sorted(BAD_VALUES))
def test_bad_value_is_refused_with_its_reason(refused: str, variable: str) -> None:
    assert BAD_VALUES[variable][1] in refused


def test_alb_needs_a_certificate_and_cidrs_must_parse(tofu: Tofu, tmp_path: Path) -> None:
    root = copy_tree(tmp_path) / "live" / "dev"
    write_override(root, closed_port(), tmp_path / "state.tfstate")
    tofu.run("init", "-input=false", "-no-color", cwd=root)
    out = plan(
        tofu, root, "-var=enable_alb=true", '-var=ui_allowed_cidrs=["10.0.0.300/24"]',
        f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]',
    )  # fmt: skip
    assert "enable_alb needs alb_certificate_arn" in out
    assert "Every entry of ui_allowed_cidrs must be a CIDR block" in out


def test_a_vpc_too_small_for_alb_subnets_is_refused(tofu: Tofu, tmp_path: Path) -> None:
    # Subnets are 1/16 of the VPC: a /24 gives /28 subnets, and an ALB needs /27 (issue 11, item 11).
    root = copy_tree(tmp_path) / "live" / "prod"
    write_override(root, closed_port(), tmp_path / "state.tfstate")
    tofu.run("init", "-input=false", "-no-color", cwd=root)
    out = plan(tofu, root, "-var=vpc_cidr=10.40.0.0/24", f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]')
    assert "an ALB needs /27 subnets" in out


def test_code_locations_whose_dns_names_collide_are_refused(tofu: Tofu, tmp_path: Path) -> None:
    root = copy_tree(tmp_path, locations=["sales_ops", "sales-ops"]) / "live" / "dev"
    write_override(root, closed_port(), tmp_path / "state.tfstate")
    tofu.run("init", "-input=false", "-no-color", cwd=root)
    out = plan(tofu, root, f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]')
    assert "Two code locations differ only by '_' versus '-'" in out
