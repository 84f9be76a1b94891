"""Bad input to every user-facing invoke task: one clear sentence, a non-zero exit, no traceback, no change.

Each case runs ``python -m invoke ...`` as a real subprocess (hence the integration session) in a
sandbox: a copy of the repository's task layer inputs (tasks.py, code_locations/, the live/ roots) with
``DAGOPS_ROOT`` pointing at it, the session's moto S3 server standing in for both the local stack's S3
endpoint and a deployed environment's bucket (``DAGOPS_TF_OUTPUTS_FILE`` gives the environment its
outputs), and a couple of local git repositories. Before and after each case the whole sandbox (every
file's bytes, every folder) and every S3 object (key and ETag) are snapshotted; the two must be equal.

``CASES`` is the table: (id, command line, fragment expected on stderr).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto_s3 import make_client

from dagops.publish import publish_location

REPO = Path(__file__).resolve().parents[2]
BUCKET = "bad-input-bucket"
REGION = "ap-southeast-2"
HOSTILE = "a;rm -rf /"
LONG = "a" * 200


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    fragment: str
    env: dict[str, str] = field(default_factory=dict)


def case(id_: str, *argv: str, expect: str, env: dict[str, str] | None = None) -> Case:
    return Case(id_, tuple(argv), expect, env or {})


BAD_ENV_NAME = "Invalid environment name"
UNKNOWN_ENV = "Unknown environment 'nope'"
BAD_LOCATION = "Invalid code location name"
BAD_TAG = "Invalid image tag"
BAD_PIPELINE = "Invalid pipeline name"

# Wrong, empty and hostile environment names, tried on every task that takes --env.
ENV_VALUES = [
    ("traversal", "../prod", BAD_ENV_NAME),
    ("upper", "PROD", BAD_ENV_NAME),
    ("empty", "", BAD_ENV_NAME),
    ("unknown", "nope", UNKNOWN_ENV),
    ("hostile", HOSTILE, BAD_ENV_NAME),
    ("bootstrap", "bootstrap", "Unknown environment 'bootstrap'"),
]
ENV_TASKS: list[tuple[str, tuple[str, ...]]] = [
    ("deploy", ("deploy",)),
    ("deploy-all", ("deploy-all",)),
    ("logs", ("logs",)),
    ("url", ("url",)),
    ("aws-credentials", ("aws-credentials",)),
    ("image.push", ("image.push",)),
    ("cost", ("cost",)),
    ("dags.deploy", ("dags.deploy",)),
    ("repo.add", ("repo.add", "--url", "https://example.com/x.git", "--name", "newloc")),
    ("repo.logs", ("repo.logs", "--name", "newloc")),
    ("env.pause", ("env.pause",)),
    ("env.resume", ("env.resume",)),
    ("infra.init", ("infra.init",)),
    ("infra.plan", ("infra.plan",)),
    ("infra.apply", ("infra.apply", "--yes")),
    ("infra.destroy", ("infra.destroy", "--yes")),
    ("infra.output", ("infra.output",)),
]

# Where --env is optional, an empty value means "no environment" (the local stack): not bad input there,
# except for cost, which needs one of --env and --all.
OPTIONAL_ENV = {"dags.deploy", "repo.add", "repo.logs"}
NAME_THE_ENV = "Name the environment with --env ENV"
GIVE_EITHER = "Give either --env ENV or --all"
EMPTY_ENV_MESSAGE = {task: GIVE_EITHER for task in ("cost", "infra.init", "infra.plan", "infra.apply",
                                                    "infra.destroy", "infra.output")}  # fmt: skip

CASES: list[Case] = [
    case(
        f"{task}-env-{kind}",
        *argv,
        "--env",
        value,
        expect=expect if value else EMPTY_ENV_MESSAGE.get(task, NAME_THE_ENV),
    )
    for task, argv in ENV_TASKS
    for kind, value, expect in ENV_VALUES
    if value or task not in OPTIONAL_ENV
]
# Tasks that need an environment, given none at all.
CASES += [
    case(f"{task}-env-missing", *argv, expect=EMPTY_ENV_MESSAGE.get(task, NAME_THE_ENV))
    for task, argv in ENV_TASKS
    if task not in OPTIONAL_ENV and task != "cost"
]
CASES += [
    # deploy: image tags
    case("deploy-tag-hostile", "deploy", "--env", "dev", "--image-tag", HOSTILE, expect=BAD_TAG),
    case("deploy-tag-dash", "deploy", "--env", "dev", "--image-tag", "-x", expect=BAD_TAG),
    case("deploy-tag-traversal", "deploy", "--env", "dev", "--image-tag", "../../x", expect=BAD_TAG),
    case("deploy-tag-too-long", "deploy", "--env", "dev", "--image-tag", LONG, expect=BAD_TAG),
    case("deploy-tag-subshell", "deploy", "--env", "dev", "--image-tag", "$(id)", expect=BAD_TAG),
    case(
        "deploy-timeout-negative",
        "deploy",
        "--env",
        "dev",
        "--image-tag",
        "v1",
        "--timeout",
        "-5",
        expect="timeout",
    ),
    case(
        "deploy-timeout-text",
        "deploy",
        "--env",
        "dev",
        "--image-tag",
        "v1",
        "--timeout",
        "abc",
        expect="timeout",
    ),
    case("deploy-missing-cluster", "deploy", "--env", "dev", "--image-tag", "v1", expect="dagops-dev"),
    case(
        "deploy-no-outputs",
        "deploy",
        "--env",
        "prod",
        "--image-tag",
        "v1",
        expect="Cannot read the outputs of environment 'prod'",
        env={"DAGOPS_TF_OUTPUTS_FILE": ""},
    ),
    case(
        "deploy-outputs-file-missing",
        "deploy",
        "--env",
        "dev",
        "--image-tag",
        "v1",
        expect="Cannot read tofu outputs",
        env={"DAGOPS_TF_OUTPUTS_FILE": "/nonexistent/outputs.json"},
    ),
    # image
    case("image.push-tag-hostile", "image.push", "--env", "dev", "--tag", HOSTILE, expect=BAD_TAG),
    case("image.push-tag-space", "image.push", "--env", "dev", "--tag", "a b", expect=BAD_TAG),
    case("image.build-tag-hostile", "image.build", "--tag", HOSTILE, expect=BAD_TAG),
    case("image.build-tag-dot", "image.build", "--tag", ".hidden", expect=BAD_TAG),
    # logs, url, credentials
    case("logs-since-text", "logs", "--env", "dev", "--since", "bogus", expect="Invalid --since 'bogus'"),
    case("logs-since-negative", "logs", "--env", "dev", "--since", "-5m", expect="Invalid --since '-5m'"),
    case(
        "logs-service-unknown", "logs", "--env", "dev", "--service", "nope", expect="Unknown service 'nope'"
    ),
    case("logs-location-traversal", "logs", "--env", "dev", "--location", "../x", expect=BAD_LOCATION),
    case("url-missing-cluster", "url", "--env", "dev", expect="dagops-dev"),
    case("aws-credentials-none", "aws-credentials", "--env", "dev", expect="aws_credentials_secret_arn"),
    # cost
    case("cost-no-env", "cost", expect="Give either --env ENV or --all"),
    case("cost-env-and-all", "cost", "--env", "dev", "--all", expect="Give either --env ENV or --all"),
    case("cost-var-no-equals", "cost", "--env", "dev", "--var", "nonsense", expect="name=value"),
    case("cost-var-bad-bool", "cost", "--env", "dev", "--var", "db_multi_az=maybe", expect="db_multi_az"),
    case(
        "cost-var-unknown", "cost", "--env", "dev", "--var", "no_such_variable=1", expect="no_such_variable"
    ),
    # infra
    case("infra.plan-env-and-all", "infra.plan", "--env", "prod", "--all", expect=GIVE_EITHER),
    case("infra.destroy-prod-unconfirmed", "infra.destroy", "--env", "prod", expect="needs --yes"),
    # dev
    case("dev-mode-unknown", "dev", "--mode", "weird", expect="dev.mode must be one of"),
    case("dev-mode-empty", "dev", "--mode", "", expect="dev.mode must be one of"),
    case("dev-port-text", "dev", expect="DAGOPS_DEV_UI_PORT", env={"DAGOPS_DEV_UI_PORT": "abc"}),
    case("dev-port-range", "dev", expect="TCP port", env={"DAGOPS_DEV_UI_PORT": "70000"}),
    case("dev-interval-zero", "dev", expect="sync_interval", env={"DAGOPS_DEV_SYNC_INTERVAL": "0"}),
    case("dev-watch-word", "dev", expect="must be true or false", env={"DAGOPS_DEV_WATCH": "maybe"}),
    case(
        "dev.logs-component-traversal",
        "dev.logs",
        "--component",
        "../supervisor",
        expect="No log for component",
    ),
    case("dev.logs-lines-negative", "dev.logs", "--lines", "-1", expect="lines"),
    case("dev.logs-lines-text", "dev.logs", "--lines", "abc", expect="lines"),
    # create
    case("create-traversal", "create", "--name", "../x", expect=BAD_PIPELINE),
    case("create-upper", "create", "--name", "Bad", expect=BAD_PIPELINE),
    case("create-empty", "create", "--name", "", expect=BAD_PIPELINE),
    case("create-hostile", "create", "--name", HOSTILE, expect=BAD_PIPELINE),
    case("create-keyword", "create", "--name", "def", expect="Python keyword"),
    case("create-exists", "create", "--name", "numbers", expect="already exists"),
    case("create-location-traversal", "create", "--name", "x", "--location", "../y", expect=BAD_LOCATION),
    case(
        "create-location-unknown",
        "create",
        "--name",
        "x",
        "--location",
        "nope",
        expect="No code location named 'nope'",
    ),
    # dags
    case("dags.deploy-location-traversal", "dags.deploy", "--location", "../x", expect=BAD_LOCATION),
    case(
        "dags.deploy-location-unknown",
        "dags.deploy",
        "--location",
        "nope",
        expect="No code location named 'nope'",
    ),
    case(
        "dags.deploy-env-location-unknown",
        "dags.deploy",
        "--env",
        "dev",
        "--location",
        "nope",
        expect="No code location named 'nope'",
    ),
    case("dags.deploy-bucket-missing", "dags.deploy", "--bucket", "no-such-bucket", expect="does not exist"),
    case(
        "dags.deploy-timeout-text", "dags.deploy", "--timeout", "soon", expect="--timeout must be a positive"
    ),
    case("dags.deploy-timeout-zero", "dags.deploy", "--timeout", "0", expect="--timeout must be a positive"),
    case(
        "dags.deploy-bucket-invalid", "dags.deploy", "--bucket", "Bad_Bucket!", expect="Invalid bucket name"
    ),
    case(
        "dags.deploy-endpoint-invalid",
        "dags.deploy",
        "--bucket",
        BUCKET,
        "--endpoint-url",
        "not a url",
        expect="not a url",
    ),
    case("dags.status-location-traversal", "dags.status", "--location", "../x", expect=BAD_LOCATION),
    case("dags.status-no-agent", "dags.status", "--code-dir", "/nonexistent", expect="No sync agent status"),
    # repo
    case(
        "repo.add-url-option",
        "repo.add",
        "--url",
        "-oProxyCommand=touch /tmp/pwn",
        "--name",
        "newloc",
        expect="cannot start with '-'",
    ),
    case("repo.add-url-not-git", "repo.add", "--url", "foo", "--name", "newloc", expect="not a git URL"),
    case(
        "repo.add-url-ftp",
        "repo.add",
        "--url",
        "ftp://host/x.git",
        "--name",
        "newloc",
        expect="not a git URL",
    ),
    case(
        "repo.add-url-shell", "repo.add", "--url", "https://h/x.git;id", "--name", "newloc", expect="Refusing"
    ),
    case(
        "repo.add-url-password",
        "repo.add",
        "--url",
        "https://u:secret@h/x.git",
        "--name",
        "newloc",
        expect="password or token",
    ),
    case(
        "repo.add-url-empty", "repo.add", "--url", "", "--name", "newloc", expect="--url URL and --name NAME"
    ),
    case(
        "repo.add-url-clone-fails",
        "repo.add",
        "--url",
        "file:///nonexistent/repo",
        "--name",
        "newloc",
        expect="git clone of file:///nonexistent/repo failed",
    ),
    case(
        "repo.add-name-traversal",
        "repo.add",
        "--url",
        "https://h/x.git",
        "--name",
        "../x",
        expect=BAD_LOCATION,
    ),
    case(
        "repo.add-name-hostile",
        "repo.add",
        "--url",
        "https://h/x.git",
        "--name",
        HOSTILE,
        expect=BAD_LOCATION,
    ),
    case(
        "repo.add-name-upper", "repo.add", "--url", "https://h/x.git", "--name", "Main", expect=BAD_LOCATION
    ),
    case(
        "repo.add-name-too-long", "repo.add", "--url", "https://h/x.git", "--name", LONG, expect=BAD_LOCATION
    ),
    case(
        "repo.add-name-duplicate",
        "repo.add",
        "--url",
        "https://h/x.git",
        "--name",
        "main",
        expect="already registered",
    ),
    case(
        "repo.add-ref-option",
        "repo.add",
        "--url",
        "https://h/x.git",
        "--name",
        "newloc",
        "--ref",
        "--upload-pack=x",
        expect="Invalid git ref",
    ),
    case(
        "repo.add-entry-traversal",
        "repo.add",
        "--url",
        "https://h/x.git",
        "--name",
        "newloc",
        "--entry",
        "../../etc/passwd.py",
        expect="Invalid entry",
    ),
    case(
        "repo.add-no-definitions",
        "repo.add",
        "--url",
        "{no_defs_repo}",
        "--name",
        "newloc",
        expect="Definitions",
    ),
    case(
        "repo.add-definitions-fail",
        "repo.add",
        "--url",
        "{broken_repo}",
        "--name",
        "newloc",
        expect="do not load",
    ),
    case(
        "add-repo-alias-url",
        "add-repo",
        "--repo-url",
        "ftp://x",
        "--repo-name",
        "newloc",
        expect="not a git URL",
    ),
    case("repo.remove-unknown", "repo.remove", "--name", "nope", expect="No code location named 'nope'"),
    case("repo.remove-own", "repo.remove", "--name", "main", expect="not an external repository"),
    case("repo.remove-empty", "repo.remove", "--name", "", expect="Give --name NAME"),
    case("repo.remove-traversal", "repo.remove", "--name", "../main", expect=BAD_LOCATION),
    case("repo.update-own", "repo.update", "--name", "main", expect="not an external repository"),
    case("repo.update-unknown", "repo.update", "--name", "nope", expect="No code location named 'nope'"),
    case("repo.update-empty", "repo.update", "--name", "", expect="Give --name NAME"),
    case("repo.logs-traversal", "repo.logs", "--name", "../x", expect=BAD_LOCATION),
    case("repo.logs-unknown", "repo.logs", "--name", "nope", expect="No log file"),
]

# --------------------------------------------------------------------------- sandbox


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _git_repo(path: Path, files: dict[str, str]) -> str:
    path.mkdir(parents=True)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "init")
    return path.as_uri()


@dataclass
class Sandbox:
    root: Path
    env: dict[str, str]
    s3: Any
    urls: dict[str, str]


def _copy_repository(dest: Path) -> None:
    dest.mkdir()
    for name in ("tasks.py", "pyproject.toml"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "code_locations", dest / "code_locations", ignore=shutil.ignore_patterns("__pycache__")
    )
    for root_dir in sorted((REPO / "live").iterdir()):
        if not root_dir.is_dir():
            continue
        target = dest / "live" / root_dir.name
        target.mkdir(parents=True)
        for item in root_dir.iterdir():
            if item.is_file() and item.suffix in {".tf", ".tfvars", ".hcl"}:
                shutil.copy2(item, target / item.name)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[Sandbox]:
    base = tmp_path_factory.mktemp("bad-input")
    root = base / "repo"
    _copy_repository(root)
    logs = root / ".dagops" / "logs"
    logs.mkdir(parents=True)
    (logs / "supervisor.log").write_text("starting the local stack\n")

    endpoint = moto_endpoint
    s3 = make_client(endpoint, REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    publish_location(s3, BUCKET, "main", root / "code_locations" / "main")

    outputs = {
        "region": REGION,
        "environment": "dev",
        "account_id": "123456789012",
        "bucket_name": BUCKET,
        "ecr_repository_url": "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/dagops",
        "cluster_name": "dagops-dev",
        "service_names": {
            "webserver": "dagops-dev-webserver",
            "daemon": "dagops-dev-daemon",
            "code-main": "dagops-dev-code-main",
        },
        "task_definition_families": {
            "webserver": "dagops-dev-webserver",
            "daemon": "dagops-dev-daemon",
            "code-main": "dagops-dev-code-main",
            "run": "dagops-dev-run",
        },
        "log_group_names": {
            "webserver": "/dagops/dev/webserver",
            "daemon": "/dagops/dev/daemon",
            "run": "/dagops/dev/run",
            "code-main": "/dagops/dev/code-main",
        },
        "db_instance_identifier": "dagops-dev",
        "webserver_url": None,
    }
    outputs_file = base / "outputs.json"
    outputs_file.write_text(json.dumps({k: {"value": v} for k, v in outputs.items()}))

    urls = {
        "no_defs_repo": _git_repo(base / "no-defs", {"README.md": "nothing here\n", "lib.py": "X = 1\n"}),
        "broken_repo": _git_repo(
            base / "broken",
            {"definitions.py": "import dagster as dg\nimport not_installed_pkg\n\ndefs = dg.Definitions()\n"},
        ),
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DAGOPS_", "DAGSTER_")) and k not in ("PYTEST_CURRENT_TEST",)
    }
    env.update(
        {
            "DAGOPS_ROOT": str(root),
            "DAGOPS_STATE_DIR": str(root / ".dagops"),
            "DAGOPS_TF_OUTPUTS_FILE": str(outputs_file),
            "DAGOPS_DEV_S3_URL": endpoint,
            "DAGOPS_DEV_BUCKET": BUCKET,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "NO_COLOR": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    yield Sandbox(root, env, s3, urls)


def _tree_state(root: Path) -> dict[str, str]:
    """Every file (sha256), folder and symlink under ``root``, bytecode caches aside."""
    state: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        here = Path(dirpath)
        for d in dirnames:
            state[(here / d).relative_to(root).as_posix() + "/"] = "dir"
        for f in filenames:
            path = here / f
            rel = path.relative_to(root).as_posix()
            state[rel] = (
                "link:" + os.readlink(path)
                if path.is_symlink()
                else hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return state


def _s3_state(s3: Any) -> dict[str, str]:
    state = {}
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        state[f"{name}/"] = "bucket"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                state[f"{name}/{item['Key']}"] = item["ETag"]
    return state


# --------------------------------------------------------------------------- the table


def test_the_table_covers_every_user_facing_task() -> None:
    """The closing note quotes this count; every user-facing root task and collection appears."""
    tried = {c.argv[0] for c in CASES}
    must = {
        "infra.init",
        "infra.plan",
        "infra.apply",
        "infra.destroy",
        "infra.output",
        "dev",
        "dev.logs",
        "create",
        "dags.deploy",
        "dags.status",
        "repo.add",
        "add-repo",
        "repo.remove",
        "repo.update",
        "repo.logs",
        "deploy",
        "deploy-all",
        "logs",
        "url",
        "aws-credentials",
        "image.build",
        "image.push",
        "env.pause",
        "env.resume",
        "cost",
    }
    assert must <= tried, must - tried
    print(f"bad-input cases: {len(CASES)} over {len(tried)} commands")
    assert len(CASES) >= 120
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_is_refused_cleanly(sandbox: Sandbox, c: Case) -> None:
    argv = [arg.format(**sandbox.urls) if "{" in arg else arg for arg in c.argv]
    env = {**sandbox.env, **c.env}
    env = {k: v for k, v in env.items() if v != ""}
    before = (_tree_state(sandbox.root), _s3_state(sandbox.s3))
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *argv],
        cwd=sandbox.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    after = (_tree_state(sandbox.root), _s3_state(sandbox.s3))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"accepted: {argv}\n{output}"
    assert "Traceback" not in output, output
    assert "\x1b[" not in output, f"terminal escape codes in the message: {output!r}"
    assert c.fragment in proc.stderr, f"expected {c.fragment!r} on stderr, got:\n{proc.stderr}"
    error_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, f"expected one sentence on stderr, got:\n{proc.stderr}"
    assert before[0] == after[0], "the repository or its state changed"
    assert before[1] == after[1], "S3 changed"
