"""Security checks: no secret in the repository, in tfvars, in non-sensitive tofu outputs or in logs.

- Every tracked file (``git ls-files``) is scanned for AWS access keys, secret keys next to their name,
  private keys and passwords written into tfvars/compose/YAML/env files. The detectors are tested on
  planted samples first, so a scan that finds nothing means something.
- Every tofu output and variable (live roots and modules) whose name or value carries a secret is
  ``sensitive = true``; ``terraform.tfvars`` files set no secret at all.
- The entrypoint, the sync agent and the publisher never print the secrets in their environment, even
  when they fail; ``aws-credentials`` is the one command that prints a secret, and only on stdout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from invoking import run_invoke

from dagops.ports import free_port

REPO = Path(__file__).resolve().parents[2]

AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b")
AWS_SECRET = re.compile(
    r"(?i)aws_?secret(?:_access)?_?key[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
PRIVATE_KEY = re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")
GITHUB_TOKEN = re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{50,}\b")
# `password: x`, `password = "x"`, `PASSWORD=x`, `secret: x` in config-like files.
CONFIG_SECRET = re.compile(
    r"(?im)^[\s\-]*[\"']?(?P<key>[A-Za-z0-9_.]*(?:password|passwd|secret|token|private_key)[A-Za-z0-9_]*)"
    r"[\"']?\s*[:=]\s*(?P<value>[^\n#]*)"
)
CONFIG_SUFFIXES = (".tfvars", ".yml", ".yaml", ".env", ".hcl", ".json", ".ini", ".cfg", ".toml")
# Values that are not secrets: references to where the secret lives, empty, null, placeholders.
NOT_A_SECRET = re.compile(
    r"""(?ix)^\s*[\"']?\s*(
        $ | null | none | ~ | true | false | "" | '' |
        \{\s*env\s*:.*\} |                      # dagster {env: DAGSTER_PG_PASSWORD}
        \$\{?[A-Za-z_][A-Za-z0-9_]*\}? |        # ${VAR} / $VAR
        \$\{\{.*\}\} |                          # GitHub expressions
        (var|local|module|data|aws_[a-z0-9_]+|random_[a-z_]+)\.[A-Za-z0-9_.\[\]"]+ |  # tofu references
        arn:aws:secretsmanager:.* | .*_arn | .*secretsmanager.* |
        <[^>]*> | changeme-in-.* |
        local-only-[a-z0-9-]+                   # compose/local.env: throwaway values, loopback only
    )\s*[\"']?\s*,?\s*$"""
)
# Known non-secrets in config files, each with its reason: (path, key, value).
ALLOWED = {
    # The local stack's Postgres uses trust authentication on loopback: the password is a formality.
    ("invoke.yaml", "postgres_password", "dagster"),
}
# Tests may hold obviously fake keys (moto accepts anything); elsewhere no key at all is allowed.
FAKE_KEY_MARKERS = ("EXAMPLE", "FAKE", "TEST", "DUMMY", "FROM", "0000")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str
    text: str


def scan_text(path: str, text: str) -> list[Finding]:
    findings: list[Finding] = []

    def add(match: re.Match[str], kind: str) -> None:
        line = text.count("\n", 0, match.start()) + 1
        findings.append(Finding(path, line, kind, match.group(0)[:80]))

    in_tests = path.startswith("tests/")
    for match in AWS_KEY_ID.finditer(text):
        if not (in_tests and any(marker in match.group(0) for marker in FAKE_KEY_MARKERS)):
            add(match, "AWS access key id")
    for match in AWS_SECRET.finditer(text):
        value = match.group("value")
        fake = in_tests and (len(set(value)) < 6 or any(m.lower() in value.lower() for m in FAKE_KEY_MARKERS))
        if not fake:
            add(match, "AWS secret access key")
    for match in PRIVATE_KEY.finditer(text):
        add(match, "private key")
    for match in GITHUB_TOKEN.finditer(text):
        add(match, "GitHub token")
    if path.endswith(CONFIG_SUFFIXES) or Path(path).name in {".env", "local.env"}:
        for match in CONFIG_SECRET.finditer(text):
            value = match.group("value").strip()
            if path.endswith(".json") and value.startswith(("{", "[")):
                continue
            if (
                not NOT_A_SECRET.match(value)
                and (path, match.group("key"), value.strip("\"' ")) not in ALLOWED
            ):
                add(match, f"{match.group('key')} set in a config file")
    return findings


def tracked_files() -> list[str]:
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [p for p in proc.stdout.decode().split("\0") if p]


# --------------------------------------------------------------------------- the detectors themselves

PLANTED = {
    "AWS access key id": ("src/x.py", "KEY = '" + "AKIA" + "Q3ZB7RT2MX6PLW4K" + "'\n"),
    "AWS secret access key": (
        "live/x/main.tf",
        'aws_secret_access_key = "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Q1w2E3r4T5" + '"\n',
    ),
    "private key": ("deploy/id", "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3Blbn...\n"),
    "GitHub token": ("ci.yml", "token: " + "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + "\n"),
    "db_password set in a config file": ("live/prod/terraform.tfvars", 'db_password = "hunter2-prod"\n'),
    "POSTGRES_PASSWORD set in a config file": ("compose/prod.env", "POSTGRES_PASSWORD=s3cr3t\n"),
    "password set in a config file": ("images/dagster.yaml", "      password: plain-text-here\n"),
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_each_detector_catches_its_planted_secret(kind: str) -> None:
    path, text = PLANTED[kind]
    assert kind in {f.kind for f in scan_text(path, text)}


@pytest.mark.parametrize(
    "line",
    [
        "      password: {env: DAGSTER_PG_PASSWORD}",
        "master_password_secret = module.database.master_user_secret_arn",
        "DAGSTER_PG_PASSWORD=local-only-dagster",
        "secrets_tag: null",
        "password = var.db_password",
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}",
    ],
)
def test_references_to_secrets_are_not_secrets(line: str) -> None:
    assert scan_text("compose/x.yaml", line + "\n") == []


def test_no_secret_in_any_tracked_file() -> None:
    files = tracked_files()
    assert len(files) > 50, "git ls-files found (almost) nothing"
    findings: list[Finding] = []
    for rel in files:
        path = REPO / rel
        if not path.is_file() or path.stat().st_size > 2_000_000 or rel == "uv.lock":
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        findings += scan_text(rel, text)
    print(f"scanned {len(files)} tracked files")
    assert findings == [], "\n".join(f"{f.path}:{f.line}: {f.kind}: {f.text}" for f in findings)


# --------------------------------------------------------------------------- tofu


def hcl_blocks(text: str, kind: str) -> dict[str, str]:
    """``{name: body}`` of every top-level ``kind "name" { ... }`` block (braces matched, strings skipped)."""
    blocks: dict[str, str] = {}
    for match in re.finditer(rf'(?m)^{kind}\s+"([^"]+)"\s*\{{', text):
        depth, i, in_string = 1, match.end(), False
        while i < len(text) and depth:
            ch = text[i]
            if in_string:
                if ch == "\\":
                    i += 1
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "#" or text.startswith("//", i):
                i = text.find("\n", i)
                if i < 0:
                    break
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            i += 1
        blocks[match.group(1)] = text[match.end() : i - 1]
    return blocks


SECRET_NAME = re.compile(r"(?i)(password|secret(?!_arn|s_manager|_name|_id\b)|token|private_key|access_key)")
SECRET_VALUE = re.compile(
    r"(?i)\.(secret|password|private_key|token|ses_smtp_password_v4|encrypted_secret|secret_string)\b"
    r"|random_password\.|\baws_secret_access_key\b|\baws_access_key_id\b"
)


def leaking_outputs(text: str) -> list[str]:
    leaking = []
    for name, body in hcl_blocks(text, "output").items():
        value = re.search(r"(?ms)^\s*value\s*=\s*(.*?)(?=^\s*\w+\s*=|\Z)", body)
        carries = SECRET_NAME.search(name) or (value and SECRET_VALUE.search(value.group(1)))
        if carries and not re.search(r"(?m)^\s*sensitive\s*=\s*true\b", body):
            leaking.append(name)
    return leaking


def test_the_output_check_catches_a_planted_leak() -> None:
    planted = """
output "db_endpoint" {
  value = aws_db_instance.this.address
}

output "s3_user" {
  description = "oops { braces } in a string"
  value       = aws_iam_access_key.s3.secret
}

output "db_password" {
  value     = random_password.db.result
  sensitive = true
}

output "aws_credentials_secret_arn" {
  value = aws_secretsmanager_secret.s3.arn
}
"""
    assert leaking_outputs(planted) == ["s3_user"]


def tofu_files(name: str) -> list[Path]:
    return sorted((REPO / "live").glob(f"*/{name}")) + sorted((REPO / "modules").glob(f"*/{name}"))


def test_the_tofu_tree_is_there() -> None:
    assert len(tofu_files("outputs.tf")) >= 5 and len(tofu_files("variables.tf")) >= 5


@pytest.mark.parametrize("path", tofu_files("outputs.tf"), ids=lambda p: str(p.relative_to(REPO)))
def test_outputs_carrying_secrets_are_sensitive(path: Path) -> None:
    leaking = leaking_outputs(path.read_text())
    assert leaking == [], f"{path.relative_to(REPO)}: outputs without sensitive = true: {leaking}"


@pytest.mark.parametrize("path", tofu_files("variables.tf"), ids=lambda p: str(p.relative_to(REPO)))
def test_variables_holding_secrets_are_sensitive(path: Path) -> None:
    variables = hcl_blocks(path.read_text(), "variable")
    leaking = [
        name
        for name, body in variables.items()
        if SECRET_NAME.search(name) and not re.search(r"(?m)^\s*sensitive\s*=\s*true\b", body)
    ]
    assert leaking == [], f"{path.relative_to(REPO)}: secret variables without sensitive = true: {leaking}"


@pytest.mark.parametrize("path", tofu_files("terraform.tfvars"), ids=lambda p: str(p.relative_to(REPO)))
def test_tfvars_set_no_secret(path: Path) -> None:
    text = path.read_text()
    assigned = re.findall(r"(?m)^\s*([A-Za-z0-9_]+)\s*=", text)
    assert assigned, f"{path} sets nothing"
    secret_names = [name for name in assigned if SECRET_NAME.search(name) or name in {"alb_oidc"}]
    assert secret_names == [], f"{path.relative_to(REPO)} sets secrets: {secret_names}"
    assert scan_text(str(path.relative_to(REPO)), text) == []


def test_the_instance_config_reads_the_password_from_the_environment() -> None:
    for rel in ("images/dagster.yaml", "compose/dagster.yaml"):
        text = (REPO / rel).read_text()
        passwords = re.findall(r"(?m)^\s*password\s*:\s*(.*)$", text)
        assert passwords, rel
        assert all(re.fullmatch(r"\{\s*env\s*:\s*DAGSTER_PG_PASSWORD\s*\}", p.strip()) for p in passwords), (
            rel
        )


# --------------------------------------------------------------------------- logs

SECRET_PG = "pg-Secret-" + "7f3a9c1e5b"
SECRET_AWS = "aws-Secret-" + "0d4e8b2a6c" + "/x+y"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGOPS_", "DAGSTER_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIA" + "SECRETKEYIDINLOGS",
            "AWS_SECRET_ACCESS_KEY": SECRET_AWS,
            "AWS_DEFAULT_REGION": "ap-southeast-2",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "DAGSTER_PG_PASSWORD": SECRET_PG,
            "DAGSTER_PG_HOST": "db.invalid",
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USERNAME": "dagster",
            "DAGSTER_S3_BUCKET": "secret-test-bucket",
            "DAGOPS_ENV": "prod",
            "DAGSTER_HOME": str(tmp_path / "home"),
            "DAGOPS_CODE_DIR": str(tmp_path / "code"),
        }
    )
    env.update(extra)
    return env


ENTRYPOINT_FAILURES = {
    "webserver-no-code-locations": (["webserver"], {}),
    "webserver-bad-code-locations": (["webserver"], {"DAGOPS_CODE_LOCATIONS": "main=host:port"}),
    "daemon-missing-template": (
        ["daemon"],
        {"DAGOPS_CODE_LOCATIONS": "main=code-main:4000", "DAGOPS_INSTANCE_TEMPLATE": "/nonexistent.yaml"},
    ),
    "webserver-template-not-yaml": (
        ["webserver"],
        {"DAGOPS_CODE_LOCATIONS": "main=code-main:4000", "DAGOPS_INSTANCE_TEMPLATE": "{template}"},
    ),
    "run-sync-fails": (["dagster", "api", "execute_run", "{}"], {"DAGOPS_LOCATION": "main"}),
    "code-location-bad-name": (["code-location"], {"DAGOPS_LOCATION": "../etc"}),
    "unknown-role": (["bash", "-c", "env"], {}),
    "run-no-pg-host": (
        ["dagster", "api", "execute_run", "{}"],
        {"DAGSTER_PG_HOST": "", "DAGOPS_LOCATION": "main"},
    ),
}


@pytest.mark.parametrize("case", sorted(ENTRYPOINT_FAILURES))
def test_entrypoint_failures_never_print_secrets(case: str, tmp_path: Path) -> None:
    argv, extra = ENTRYPOINT_FAILURES[case]
    template = tmp_path / "bad.yaml"
    template.write_text("storage: [unclosed\npassword: {env: DAGSTER_PG_PASSWORD}\n")
    extra = {k: v.replace("{template}", str(template)) for k, v in extra.items()}
    proc = subprocess.run(
        [sys.executable, "-m", "dagops.runtime.entrypoint", *argv],
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert proc.stderr.strip(), "a failure says why"
    for secret in (SECRET_PG, SECRET_AWS, "SECRETKEYIDINLOGS"):
        assert secret not in output, f"{case}: a secret was printed:\n{output}"
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "dagops.runtime.sync", "once", "--location", "main"],
        ["-m", "dagops.publish", "--location", "main", "--source", str(REPO / "code_locations" / "main")],
    ],
    ids=["sync-once", "publish"],
)
def test_s3_failures_never_print_secrets(argv: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, *argv], env=_env(tmp_path), capture_output=True, text=True, timeout=120, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert SECRET_AWS not in output and "SECRETKEYIDINLOGS" not in output, output
    assert SECRET_PG not in output, output


# --------------------------------------------------------------------------- aws-credentials


@pytest.fixture()
def outputs_with_credentials(tmp_path: Path) -> tuple[dict[str, str], str, str]:
    key_id, secret = "AKIA" + "OUTPUTSKEYID0001", "outputs/Secret+" + "9b8a7c6d5e"
    values = {
        "region": "ap-southeast-2",
        "environment": "dev",
        "bucket_name": "secret-test-bucket",
        "cluster_name": "dagops-dev",
        "ecr_repository_url": "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/dagops",
        "webserver_url": "https://dagster.example.com",
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({k: {"value": v, "sensitive": "aws_" in k} for k, v in values.items()}))
    env = _env(tmp_path, DAGOPS_TF_OUTPUTS_FILE=str(path), DAGOPS_ROOT=str(REPO))
    return env, key_id, secret


def test_aws_credentials_prints_the_secret_on_stdout_only(
    outputs_with_credentials: tuple[dict[str, str], str, str],
) -> None:
    env, key_id, secret = outputs_with_credentials
    proc = run_invoke("aws-credentials", "--env", "dev", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{key_id}\n{secret}\n"
    assert proc.stderr == ""


@pytest.mark.parametrize(
    "argv",
    [
        ("url", "--env", "dev"),
        ("deploy", "--env", "dev", "--image-tag", "bad;tag"),
        ("image.push", "--env", "dev", "--tag", "bad tag"),
        ("logs", "--env", "dev", "--since", "bogus"),
        ("dags.deploy", "--env", "dev", "--location", "nope"),
        ("cost", "--env", "dev", "--json"),
        ("dev.status",),
    ],
    ids=lambda a: a[0],
)
def test_no_other_command_prints_the_secret(
    outputs_with_credentials: tuple[dict[str, str], str, str], argv: tuple[str, ...]
) -> None:
    env, key_id, secret = outputs_with_credentials
    proc = run_invoke(*argv, env=env, timeout=120)
    output = proc.stdout + proc.stderr
    assert secret not in output and key_id not in output, f"{argv} printed the S3 credentials:\n{output}"
    assert "Traceback" not in output, output


# --------------------------------------------------------------------------- suppressions

SUPPRESSIONS = {
    "checkov": re.compile(r"checkov:skip=(?P<id>[A-Z0-9_]+)(?::\s*(?P<why>.*))?"),
    "hadolint": re.compile(r"hadolint ignore=(?P<id>[A-Z0-9,]+)(?P<why>.*)"),
    "zizmor": re.compile(r"zizmor:\s*ignore\[(?P<id>[^\]]+)\](?P<why>.*)"),
}


def test_every_scanner_suppression_is_justified_inline() -> None:
    """checkov, hadolint and zizmor findings may be suppressed only with the reason on the same line."""
    found, unjustified = 0, []
    for rel in tracked_files():
        if not rel.endswith((".tf", "Dockerfile", ".yml", ".yaml")) or rel.startswith("tests/"):
            continue
        for number, line in enumerate((REPO / rel).read_text().splitlines(), 1):
            for tool, pattern in SUPPRESSIONS.items():
                match = pattern.search(line)
                if match:
                    found += 1
                    why = (match.group("why") or "").strip(" -:#")
                    if len(why) < 15:
                        unjustified.append(f"{rel}:{number}: {tool} {match.group('id')} without a reason")
    print(f"scanner suppressions: {found}")
    assert unjustified == [], "\n".join(unjustified)


# --------------------------------------------------------------------------- infra.output

TF_SECRET = "tf-Secret-" + "5c3b1a9d7e"


@pytest.fixture()
def env_with_state(tmp_path: Path) -> dict[str, str]:
    """A copy of live/ and modules/ whose dev root has a local state holding a sensitive output."""
    binary = next((b for b in ("tofu", "terraform") if shutil.which(b)), None)
    if binary is None:
        pytest.skip("neither tofu nor terraform is on PATH")
    for name in ("live", "modules"):
        shutil.copytree(
            REPO / name, tmp_path / name, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*")
        )
    for name in ("tasks.py", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    dev = tmp_path / "live" / "dev"
    (dev / "local_backend_override.tf").write_text(
        'terraform {\n  backend "local" {\n    path = "t.tfstate"\n  }\n}\n'
    )
    state = {
        "version": 4,
        "terraform_version": "1.11.0",
        "serial": 1,
        "lineage": "6b0c8e0e-0000-4000-8000-000000000001",
        "outputs": {
            "bucket_name": {"value": "dagops-dev-123456789012", "type": "string"},
            "aws_secret_access_key": {"value": TF_SECRET, "type": "string", "sensitive": True},
        },
        "resources": [],
        "check_results": None,
    }
    (dev / "t.tfstate").write_text(json.dumps(state))
    env = _env(tmp_path, DAGOPS_ROOT=str(tmp_path), HOME=str(tmp_path))
    mirror = Path(os.environ.get("DAGOPS_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
    if mirror.is_dir():
        rc = tmp_path / "cli.tfrc"
        rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n')
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    subprocess.run([binary, f"-chdir={dev}", "init", "-input=false", "-no-color"], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    return env


def test_infra_output_shows_sensitive_outputs_masked(env_with_state: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "infra.output", "--env", "dev"],
        cwd=env_with_state["DAGOPS_ROOT"], env=env_with_state, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "dagops-dev-123456789012" in proc.stdout
    assert TF_SECRET not in proc.stdout + proc.stderr


def test_infra_output_json_does_not_print_secrets(env_with_state: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "infra.output", "--env", "dev", "--json"],
        cwd=env_with_state["DAGOPS_ROOT"], env=env_with_state, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bucket_name"]["value"] == "dagops-dev-123456789012"
    assert TF_SECRET not in proc.stdout + proc.stderr
