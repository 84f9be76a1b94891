"""Helpers of the OpenTofu tests: the binary, a provider mirror, throwaway copies of the tree, moto.

Nothing here writes into the repository: every init, override file and state lives in a temporary
copy of modules/, live/ and the code-location registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# A provider mirror makes init offline and fast (the CI image and this machine have one); without it
# the binary downloads hashicorp/aws from its registry.
MIRROR = Path(os.environ.get("DAGOPS_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
MOTO_ACCOUNT = "123456789012"
# The code locations the session's applied dev root has (conftest.py's dev_applied), and the account guard
# every apply against moto passes.
LOCATIONS = ["main", "sales_ops"]
ACCOUNT_VAR = f'-var=allowed_account_ids=["{MOTO_ACCOUNT}"]'
REGION = "ap-southeast-2"
# The outputs every live root promises (the task layer and the deploy workflow read them).
CONTRACT_OUTPUTS = {
    "region",
    "environment",
    "account_id",
    "bucket_name",
    "ecr_repository_url",
    "cluster_name",
    "service_names",
    "task_definition_families",
    "log_group_names",
    "db_instance_identifier",
    "webserver_url",
    "aws_credentials_secret_arn",
    "aws_access_key_id",
    "aws_secret_access_key",
}


def find_binary() -> str | None:
    for name in ("tofu", "terraform"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Tofu:
    """Runs the tofu/terraform binary with a private CLI config and fake AWS credentials."""

    binary: str
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        *args: str,
        cwd: Path,
        check: bool = True,
        timeout: float = 600,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
            raise AssertionError(f"{Path(self.binary).name} {' '.join(args[:2])} failed in {cwd}:\n{tail}")
        return proc


def make_tofu(binary: str, home: Path) -> Tofu:
    """A Tofu whose CLI config (in ``home``) installs providers from the mirror when there is one."""
    config = home / "cli.tfrc"
    if MIRROR.is_dir():
        config.write_text(
            f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n  }}\n}}\n'
        )
    else:
        config.write_text("")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return Tofu(binary=binary, env=env)


def copy_tree(dest: Path, locations: list[str] | None = None) -> Path:
    """A copy of modules/ and live/ plus a registry (the repository's, or one listing ``locations``)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate", "*.tfstate.*", "*_override.tf", "override.tf")
    for name in ("modules", "live"):
        # symlinks=True: live/<env>/*.tf stay relative links into live/_shared, as in the repository.
        shutil.copytree(REPO / name, dest / name, ignore=ignore, symlinks=True)
    registry = dest / "code_locations" / "locations.yaml"
    registry.parent.mkdir(parents=True, exist_ok=True)
    if locations is None:
        shutil.copy2(REPO / "code_locations" / "locations.yaml", registry)
    else:
        lines = ["locations:"]
        for name in locations:
            lines += [f"- name: {name}", f"  source: code_locations/{name}", "  entry: definitions.py"]
        registry.write_text("\n".join(lines) + "\n")
    return dest


# Every service the roots talk to; anything missing here would leak to the real AWS endpoint.
EMULATED_SERVICES = (
    "applicationautoscaling",
    "cloudwatch",
    "ec2",
    "ecr",
    "ecs",
    "elbv2",
    "iam",
    "logs",
    "rds",
    "route53",
    "s3",
    "scheduler",
    "secretsmanager",
    "servicediscovery",
    "sqs",
    "ssm",
    "sts",
)


def write_override(root: Path, endpoint: str, state_path: Path) -> Path:
    """An override file (never in the repository) pointing the AWS provider at ``endpoint``, local state."""
    endpoints = "\n".join(f'    {name} = "{endpoint}"' for name in EMULATED_SERVICES)
    path = root / "emulator_override.tf"
    path.write_text(
        'provider "aws" {\n'
        '  access_key                  = "testing"\n'
        '  secret_key                  = "testing"\n'
        "  skip_credentials_validation = true\n"
        "  skip_metadata_api_check     = true\n"
        "  skip_region_validation      = true\n"
        "  s3_use_path_style           = true\n"
        # moto lacks some calls (Application Auto Scaling tags): fail fast instead of retrying for minutes,
        # but retry twice, as against AWS, the rare 500 moto's server answers under many parallel calls.
        "  max_retries                 = 3\n"
        "  endpoints {\n"
        f"{endpoints}\n"
        "  }\n"
        "}\n\n"
        "terraform {\n"
        '  backend "local" {\n'
        f'    path = "{state_path}"\n'
        "  }\n"
        "}\n"
    )
    return path


MOTO_SCRIPT = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
"""


def moto_client(endpoint: str, service: str) -> Any:
    """A boto3 client of ``service`` on the moto server at ``endpoint`` (fake keys, the roots' region)."""
    import boto3

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class MotoServer:
    """A moto server in a process of its own (moto's state is per process: one RDS instance each)."""

    process: subprocess.Popen[str]
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on this server."""
        return moto_client(self.endpoint, service)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_moto(managed_policies: bool = False) -> MotoServer:
    """Start a moto server; ``managed_policies`` loads AWS managed IAM policies (slower start)."""
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true" if managed_policies else "false"}
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SCRIPT],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and not line:
        line = process.stdout.readline().strip()
        if process.poll() is not None:
            break
    if not line.isdigit():
        process.kill()
        raise RuntimeError("the moto server did not start")
    return MotoServer(process=process, port=int(line))


@dataclass
class Applied:
    """A root applied against its own moto server: its outputs and boto3 clients on that server."""

    root: Path
    moto: MotoServer
    outputs: dict[str, Any]

    def client(self, service: str) -> Any:
        return self.moto.client(service)
