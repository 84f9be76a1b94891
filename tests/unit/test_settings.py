"""dagops.settings: every variable typed and read in one place; a bad value is one sentence and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from dagops import paths, settings
from dagops.errors import ConfigError, DagopsError

REPO = Path(__file__).resolve().parents[2]

# The names and defaults the code has always used (README: "Container settings").
DEFAULTS = {
    "DAGSTER_S3_BUCKET": None,
    "AWS_ENDPOINT_URL": None,
    "DAGOPS_LOCATION": None,
    "DAGOPS_CODE_DIR": Path("/opt/dagster/code"),
    "DAGOPS_SYNC_INTERVAL": 60.0,
    "DAGOPS_GRPC_HOST": "0.0.0.0",  # noqa: S104
    "DAGOPS_GRPC_PORT": 4000,
    "DAGOPS_WEBSERVER_URL": None,
    "DAGOPS_SYNC_QUEUE_URL": None,
    "DAGOPS_SYNC_STANDBY": False,
    "DAGOPS_CODE_SERVER_MAX_RSS_MB": 0.0,
    "DAGOPS_RUN_TASK_ROLE_ARN": None,
    "DAGOPS_AGENT_ID": None,
    "DAGOPS_REQUIREMENTS_TIMEOUT": 900.0,
    "DAGOPS_REQUIREMENTS_INDEXES": "refuse",
    "DAGOPS_ROOT": None,
    "DAGOPS_STATE_DIR": None,
    "DAGOPS_GIT_TIMEOUT": 300.0,
    "DAGOPS_TF_OUTPUTS_FILE": None,
    "DAGOPS_PYTHON_IMAGE": None,
    "DAGOPS_UV_IMAGE": None,
    # The entrypoint's roles and the database role setup.
    "DAGOPS_ENV": None,
    "DAGOPS_COMPUTE_LOG_PREFIX": None,
    "DAGSTER_PG_HOST": None,
    "DAGSTER_PG_PORT": 5432,
    "DAGSTER_PG_DB": None,
    "DAGSTER_PG_USERNAME": None,
    "DAGSTER_PG_PASSWORD": None,
    "DAGSTER_PG_AUTH": "password",
    "DAGOPS_DB_MASTER_SECRET_ARN": None,
    "DAGOPS_DB_SSLMODE": "prefer",
    "DAGSTER_HOME": Path("/opt/dagster/home"),
    "DAGOPS_WORKSPACE": None,
    "DAGOPS_CODE_LOCATIONS": None,
    "DAGOPS_INSTANCE_TEMPLATE": None,
    "DAGOPS_RUN_SUBNETS": [],
    "DAGOPS_RUN_SECURITY_GROUPS": [],
    "DAGOPS_RUN_CAPACITY_PROVIDER": None,
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _groups() -> list[type[BaseSettings]]:
    """Every settings group the module defines."""
    return [
        value
        for value in vars(settings).values()
        if isinstance(value, type)
        and issubclass(value, BaseSettings)
        and value.__module__ == settings.__name__
    ]


def test_each_variable_has_its_name_type_default_and_description(clean_env: pytest.MonkeyPatch) -> None:
    groups = _groups()
    declared = {str(f.validation_alias): f for group in groups for f in group.model_fields.values()}
    assert set(declared) == set(DEFAULTS)
    # Declared once: a group shares another's variables only by inheriting them (SyncSettings).
    own = [
        str(f.validation_alias)
        for group in groups
        for name, f in group.model_fields.items()
        if not any(name in getattr(base, "model_fields", {}) for base in group.__bases__)
    ]
    assert sorted(own) == sorted(DEFAULTS)
    for name, field in declared.items():
        assert field.default == DEFAULTS[name], name
        assert field.annotation is not None and field.description, name
    sync = settings.load(settings.SyncSettings)
    assert (sync.interval, sync.grpc_port, sync.grpc_host, sync.standby, sync.max_rss_mb) == (
        60.0,
        4000,
        "0.0.0.0",  # noqa: S104
        False,
        0.0,
    )
    assert sync.code_dir == Path("/opt/dagster/code") and sync.location is None
    assert settings.load(settings.RequirementsSettings).install_timeout == 900.0
    assert settings.load(settings.OperatorSettings).git_timeout == 300.0


def test_readme_lists_every_variable() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name in DEFAULTS if f"`{name}`" not in readme]
    assert missing == []


def test_values_are_typed_blank_is_unset_and_names_are_exact(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DAGOPS_SYNC_INTERVAL", " 2.5 ")
    clean_env.setenv("DAGOPS_GRPC_PORT", "4123")
    clean_env.setenv("DAGOPS_SYNC_STANDBY", "yes")
    clean_env.setenv("DAGOPS_CODE_DIR", "   ")  # blank: the default, as before
    clean_env.setenv("dagops_code_server_max_rss_mb", "oops")  # not the name: ignored
    sync = settings.load(settings.SyncSettings)
    assert (sync.interval, sync.grpc_port, sync.standby) == (2.5, 4123, True)
    assert sync.code_dir == Path("/opt/dagster/code") and sync.max_rss_mb == 0.0


def test_an_option_wins_and_is_named_in_its_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DAGOPS_SYNC_INTERVAL", "30")
    assert settings.load(settings.SyncSettings, {"interval": ("--interval", 5.0)}).interval == 5.0
    assert settings.load(settings.SyncSettings, {"interval": ("--interval", None)}).interval == 30.0
    with pytest.raises(ConfigError) as caught:
        settings.load(settings.SyncSettings, {"interval": ("--interval", -1.0)})
    assert str(caught.value) == "--interval='-1.0' is not a number of seconds: it must be positive."


@pytest.mark.parametrize(
    ("name", "value", "sentence"),
    [
        ("DAGOPS_SYNC_INTERVAL", "abc", "DAGOPS_SYNC_INTERVAL='abc' is not a number of seconds."),
        (
            "DAGOPS_SYNC_INTERVAL",
            "-5",
            "DAGOPS_SYNC_INTERVAL='-5' is not a number of seconds: it must be positive.",
        ),
        ("DAGOPS_SYNC_INTERVAL", "inf", "DAGOPS_SYNC_INTERVAL='inf' is not a number of seconds."),
        (
            "DAGOPS_GRPC_PORT",
            "70000",
            "DAGOPS_GRPC_PORT='70000' is not a port number: it must be from 1 to 65535.",
        ),
        ("DAGOPS_GRPC_PORT", "4000.5", "DAGOPS_GRPC_PORT='4000.5' is not a port number."),
        ("DAGOPS_SYNC_STANDBY", "maybe", "DAGOPS_SYNC_STANDBY='maybe' is not true or false."),
        (
            "DAGOPS_CODE_SERVER_MAX_RSS_MB",
            "-1",
            "DAGOPS_CODE_SERVER_MAX_RSS_MB='-1' is not a number of megabytes (0 for no limit).",
        ),
        (
            "DAGOPS_REQUIREMENTS_TIMEOUT",
            "0",
            "DAGOPS_REQUIREMENTS_TIMEOUT='0' is not a number of seconds: it must be positive.",
        ),
        (
            "DAGOPS_REQUIREMENTS_INDEXES",
            "all",
            "DAGOPS_REQUIREMENTS_INDEXES='all' is not one of refuse, https or any.",
        ),
        (
            "DAGOPS_RUN_TASK_ROLE_ARN",
            "arn:aws:iam::123456789012:user/me",
            "DAGOPS_RUN_TASK_ROLE_ARN='arn:aws:iam::123456789012:user/me' is not an IAM role ARN "
            "(arn:aws:iam::ACCOUNT:role/NAME).",
        ),
    ],
)
def test_a_bad_value_is_one_sentence_and_exit_1_from_the_agent_cli(
    name: str, value: str, sentence: str, tmp_path: Path
) -> None:
    """Through the real ``python -m dagops.runtime.sync run``: before any S3 call, nothing written."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DAGSTER_S3_BUCKET": "dagops-settings-test",
        "DAGOPS_LOCATION": "main",
        "DAGOPS_CODE_DIR": str(tmp_path / "code"),
        name: value,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dagops.runtime.sync", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == f"error: {sentence}\n"
    assert proc.stdout == ""
    assert not (tmp_path / "code").exists()


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_git_timeout_is_one_sentence(value: str, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dagops.operator.repos.git import git

    clean_env.setenv("DAGOPS_GIT_TIMEOUT", value)
    with pytest.raises(DagopsError, match=r"^DAGOPS_GIT_TIMEOUT='.*' is not a number of seconds") as caught:
        git(["--version"], cwd=tmp_path)
    assert "\n" not in str(caught.value)


def test_a_bad_requirements_setting_is_one_sentence(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DAGOPS_REQUIREMENTS_TIMEOUT", "forever")
    with pytest.raises(ConfigError) as caught:
        settings.load(settings.RequirementsSettings)
    assert str(caught.value) == "DAGOPS_REQUIREMENTS_TIMEOUT='forever' is not a number of seconds."
    clean_env.delenv("DAGOPS_REQUIREMENTS_TIMEOUT")
    clean_env.setenv("DAGOPS_REQUIREMENTS_INDEXES", " HTTPS ")
    assert settings.load(settings.RequirementsSettings).index_policy == "https"
    clean_env.setenv("DAGOPS_REQUIREMENTS_INDEXES", "yes please")
    with pytest.raises(ConfigError) as caught:
        settings.load(settings.RequirementsSettings)
    assert str(caught.value) == "DAGOPS_REQUIREMENTS_INDEXES='yes please' is not one of refuse, https or any."


def test_paths_follow_their_variables(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert (paths.repo_root() / "tasks.py").is_file()  # unset: found from the package
    clean_env.setenv("DAGOPS_ROOT", str(tmp_path))
    clean_env.setenv("DAGOPS_STATE_DIR", "")
    assert paths.repo_root() == tmp_path.resolve()
    assert paths.state_dir() == tmp_path.resolve() / ".dagops"
    clean_env.setenv("DAGOPS_STATE_DIR", str(tmp_path / "state"))
    assert paths.state_dir() == (tmp_path / "state").resolve()


def test_the_bucket_is_required_with_one_line(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DAGSTER_S3_BUCKET", "  ")
    with pytest.raises(ConfigError, match=r"^DAGSTER_S3_BUCKET is not set .*; set it and start again\.$"):
        settings.bucket()
    clean_env.setenv("DAGSTER_S3_BUCKET", "b1")
    assert settings.bucket() == "b1"


def test_the_task_menu_does_not_import_pydantic() -> None:
    """`invoke --list` stays fast: the modules it imports read settings inside the functions."""
    code = "import sys, tasks; print(sorted(m for m in sys.modules if m.startswith('pydantic')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_the_entrypoints_groups_read_the_mapping_they_are_given(clean_env: pytest.MonkeyPatch) -> None:
    """Only ``environ``, not the process environment: the entrypoint passes that mapping on."""
    clean_env.setenv("DAGSTER_PG_HOST", "from-the-process")
    given = {
        "DAGSTER_PG_PORT": " 5433 ",
        "DAGSTER_PG_AUTH": "iam",
        "DAGOPS_RUN_SUBNETS": "subnet-a, subnet-b,,",
        "DAGOPS_RUN_SECURITY_GROUPS": "  ",
        "DAGOPS_RUN_CAPACITY_PROVIDER": "FARGATE_SPOT",
        "DAGSTER_HOME": "/tmp/home",
    }
    pg = settings.load(settings.PostgresSettings, environ=given)
    assert (pg.host, pg.port, pg.auth) == (None, 5433, "iam")
    assert settings.variables(pg)["DAGSTER_PG_PORT"] == 5433
    runs = settings.load(settings.RunTaskSettings, environ=given)
    assert (runs.subnets, runs.security_groups, runs.capacity_provider) == (
        ["subnet-a", "subnet-b"],
        [],
        "FARGATE_SPOT",
    )
    assert settings.load(settings.InstanceSettings, environ=given).home == Path("/tmp/home")
    # Read from the process environment, a comma list is not taken for JSON.
    clean_env.setenv("DAGOPS_RUN_SUBNETS", "subnet-c,subnet-d")
    assert settings.load(settings.RunTaskSettings).subnets == ["subnet-c", "subnet-d"]


@pytest.mark.parametrize(
    ("name", "value", "sentence"),
    [
        ("DAGSTER_PG_AUTH", "kerberos", "DAGSTER_PG_AUTH is 'kerberos': expected one of password, iam."),
        ("DAGSTER_PG_PORT", "abc", "DAGSTER_PG_PORT='abc' is not a port number."),
        ("DAGSTER_PG_PORT", "0", "DAGSTER_PG_PORT='0' is not a port number: it must be from 1 to 65535."),
        (
            "DAGOPS_RUN_CAPACITY_PROVIDER",
            "SPOT",
            "DAGOPS_RUN_CAPACITY_PROVIDER is 'SPOT': expected one of FARGATE, FARGATE_SPOT.",
        ),
        (
            "DAGOPS_DB_SSLMODE",
            "always",
            "DAGOPS_DB_SSLMODE='always' is not one of disable, allow, prefer, require, verify-ca "
            "or verify-full.",
        ),
    ],
)
def test_a_bad_entrypoint_value_is_one_sentence(name: str, value: str, sentence: str) -> None:
    groups = (settings.PostgresSettings, settings.RunTaskSettings, settings.DatabaseSetupSettings)
    (group,) = [g for g in groups if any(f.validation_alias == name for f in g.model_fields.values())]
    with pytest.raises(ConfigError) as caught:
        settings.load(group, environ={name: value})
    assert str(caught.value) == sentence
