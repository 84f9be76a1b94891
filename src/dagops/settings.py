"""Settings read from the environment: every ``DAGOPS_*``/``DAGSTER_*`` variable the code reads by name is
declared here once, typed, with its default and a one-line description (README: "Container settings").
The container entrypoint (runtime.entrypoint) and the database role setup (runtime.db_setup) read their
groups from the mapping they are given, which they also pass on to the process they start
(``load(Group, environ=env)``); which role needs which variable stays in the entrypoint. The local stack's
``DAGOPS_DEV_*`` variables are not here: they are a layer over invoke.yaml's ``dev:`` mapping, typed and
checked with it in operator.devstack.config.

Each group is a pydantic-settings class; ``load(Group)`` reads it and turns a bad value into a ConfigError
of one sentence naming the variable (``DAGOPS_SYNC_INTERVAL='abc' is not a number of seconds.``), never a
validation traceback. Command-line options that stand for a variable are passed to ``load`` as
``options``: they win over the environment, and an error names the option instead.

An empty or blank variable counts as unset (its default applies), as it always did. Names are matched
exactly (case-sensitive). Passing the environment on to a child process is not reading a setting and
does not go through here.

Importing pydantic costs a few tenths of a second: modules on ``invoke --list``'s import path (paths,
the task modules) import this module inside the function that needs a setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from dagops.errors import ConfigError

BUCKET_VAR = "DAGSTER_S3_BUCKET"
DAGS_PREFIX = "dags"
# An IAM role ARN (ASCII names, as IAM allows), anchored: pydantic's pattern is a search.
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$"


def setting(
    env: str, default: Any, description: str, expect: str, bound: str = "", sentence: str = "", **rules: Any
) -> Any:
    """A field read from variable ``env``: ``expect`` completes "X='v' is not ..." in its error; ``bound``
    (e.g. "positive") is added when a value of the right type breaks a rule such as ``gt=0``. ``sentence``
    replaces the whole error (``{name}``, ``{value}``) where a message is older than this module."""
    extra: dict[str, Any] = {"expect": expect, "bound": bound, "sentence": sentence}
    return Field(default, validation_alias=env, description=description, json_schema_extra=extra, **rules)


def port(env: str, default: int, description: str) -> Any:
    """A TCP port number."""
    return setting(env, default, description, "a port number", "from 1 to 65535", ge=1, le=65535)


# A comma-separated list ("a, b,,c" -> ["a", "b", "c"], split by its group); not decoded as JSON.
CommaList = Annotated[list[str], NoDecode]


def seconds(env: str, default: float, description: str) -> Any:
    """A positive number of seconds (an interval, a timeout)."""
    return setting(env, default, description, "a number of seconds", "positive", gt=0)


# Set while ``load`` reads a group from a given mapping: then the process environment is not a source.
_GIVEN_ENVIRON: ContextVar[bool] = ContextVar("dagops_settings_given_environ", default=False)


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", allow_inf_nan=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The values given to ``load`` (options, or the whole mapping it was given), then the process
        environment unless a mapping was given."""
        return (init_settings,) if _GIVEN_ENVIRON.get() else (init_settings, env_settings)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """Strip values; a blank one is dropped so that its default applies."""
        if not isinstance(data, dict):
            return data
        stripped = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return {k: v for k, v in stripped.items() if v != ""}


class S3Settings(_Settings):
    """Where the code lives in S3 (the agent, publish, the entrypoint, ``invoke dags.deploy``)."""

    bucket: str | None = setting(
        BUCKET_VAR, None, "the S3 bucket that holds dags/<location>/", "a bucket name"
    )
    endpoint_url: str | None = setting(
        "AWS_ENDPOINT_URL", None, "an S3-compatible endpoint (local stack, moto); unset in AWS", "a URL"
    )


class LocationSettings(_Settings):
    """The code location a container serves and where its synced trees live (the sync agent; the
    entrypoint's code-location and run roles)."""

    location: str | None = setting("DAGOPS_LOCATION", None, "the code location this agent serves", "a name")
    code_dir: Path = setting(
        "DAGOPS_CODE_DIR", Path("/opt/dagster/code"), "where synced trees live", "a folder"
    )


class SyncSettings(LocationSettings):
    """The sync agent of one code location (``python -m dagops.runtime.sync``)."""

    interval: float = seconds("DAGOPS_SYNC_INTERVAL", 60.0, "seconds between polls")
    grpc_host: str = setting(
        "DAGOPS_GRPC_HOST",
        "0.0.0.0",  # noqa: S104 - the code server listens for the webserver and daemon in other tasks
        "the code server's listen host",
        "a host",
    )
    grpc_port: int = port("DAGOPS_GRPC_PORT", 4000, "the code server's gRPC port")
    webserver_url: str | None = setting(
        "DAGOPS_WEBSERVER_URL", None, "where to send reloadRepositoryLocation after a swap", "a URL"
    )
    queue_url: str | None = setting(
        "DAGOPS_SYNC_QUEUE_URL", None, "the SQS queue of the location's S3 manifest events", "a queue URL"
    )
    standby: bool = setting(
        "DAGOPS_SYNC_STANDBY",
        False,
        "keep a process with dagster imported for the next check",
        "true or false",
    )
    max_rss_mb: float = setting(
        "DAGOPS_CODE_SERVER_MAX_RSS_MB",
        0.0,
        "replace the code server past this RSS in MB (0: no limit)",
        "a number of megabytes (0 for no limit)",
        ge=0,
    )
    run_task_role_arn: str | None = setting(
        "DAGOPS_RUN_TASK_ROLE_ARN",
        None,
        "this location's run role, the code server's ECS container context",
        "an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
        pattern=ROLE_ARN_PATTERN,
    )
    agent_id: str | None = setting(
        "DAGOPS_AGENT_ID", None, "this agent's name in its S3 reports (default: host name and pid)", "a name"
    )


class RequirementsSettings(_Settings):
    """Installing a code location's requirements (runtime.requirements)."""

    install_timeout: float = seconds(
        "DAGOPS_REQUIREMENTS_TIMEOUT", 900.0, "seconds one requirements install may take"
    )
    index_policy: Literal["refuse", "https", "any"] = setting(
        "DAGOPS_REQUIREMENTS_INDEXES",
        "refuse",
        "may a repository's requirements name package indexes: refuse, https or any",
        "one of refuse, https or any",
    )

    @field_validator("index_policy", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class PathSettings(_Settings):
    """Where things are on the operator's machine (dagops.paths); the root is also the checkout the
    entrypoint's publish role publishes from."""

    root: Path | None = setting(
        "DAGOPS_ROOT", None, "the repository root (default: found from here)", "a folder"
    )
    state_dir: Path | None = setting(
        "DAGOPS_STATE_DIR", None, "the local stack's state (default: <root>/.dagops)", "a folder"
    )


class EnvironmentSettings(_Settings):
    """The environment a container belongs to (the entrypoint, every role)."""

    name: str | None = setting("DAGOPS_ENV", None, "the environment's name (dev, prod, local)", "a name")
    compute_log_prefix: str | None = setting(
        "DAGOPS_COMPUTE_LOG_PREFIX",
        None,
        "the S3 prefix of compute logs (default: logs/<DAGOPS_ENV>)",
        "an S3 key prefix",
    )


class PostgresSettings(_Settings):
    """Dagster's Postgres storage (the entrypoint's webserver, daemon and run roles; runtime.db_setup)."""

    host: str | None = setting("DAGSTER_PG_HOST", None, "the Postgres server's host", "a host")
    port: int = port("DAGSTER_PG_PORT", 5432, "the Postgres server's port")
    db: str | None = setting("DAGSTER_PG_DB", None, "the database that holds Dagster's storage", "a name")
    username: str | None = setting("DAGSTER_PG_USERNAME", None, "the role Dagster logs in as", "a name")
    password: str | None = setting(
        "DAGSTER_PG_PASSWORD", None, "its password (not needed with DAGSTER_PG_AUTH=iam)", "a password"
    )
    auth: Literal["password", "iam"] = setting(
        "DAGSTER_PG_AUTH",
        "password",
        "password (DAGSTER_PG_PASSWORD) or iam (an RDS IAM token per new connection)",
        "one of password or iam",
        sentence="{name} is {value!r}: expected one of password, iam.",
    )


class DatabaseSetupSettings(_Settings):
    """The one-off setup of Dagster's database role (runtime.db_setup, the entrypoint's db-setup role)."""

    master_secret_arn: str | None = setting(
        "DAGOPS_DB_MASTER_SECRET_ARN",
        None,
        "the RDS master user's secret in Secrets Manager, read when the setup runs",
        "a secret ARN",
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = setting(
        "DAGOPS_DB_SSLMODE",
        "prefer",
        "libpq's sslmode of the master's connection (RDS forces TLS; prefer also reaches a local server)",
        "one of disable, allow, prefer, require, verify-ca or verify-full",
    )


class InstanceSettings(_Settings):
    """The Dagster instance of the webserver and the daemon (the entrypoint renders its files)."""

    home: Path = setting(
        "DAGSTER_HOME", Path("/opt/dagster/home"), "where dagster.yaml and workspace.yaml are", "a folder"
    )
    workspace: Path | None = setting(
        "DAGOPS_WORKSPACE", None, "a workspace.yaml used as it is (else rendered from the next)", "a file"
    )
    code_locations: str | None = setting(
        "DAGOPS_CODE_LOCATIONS", None, "name=host:port,... the code servers of workspace.yaml", "a list"
    )
    instance_template: Path | None = setting(
        "DAGOPS_INSTANCE_TEMPLATE", None, "the dagster.yaml template rendered into DAGSTER_HOME", "a file"
    )


class RunTaskSettings(_Settings):
    """Where the EcsRunLauncher starts runs (filled into dagster.yaml by the entrypoint)."""

    subnets: CommaList = setting(
        "DAGOPS_RUN_SUBNETS", [], "run tasks' subnets, comma-separated (default: the daemon's)", "a list"
    )
    security_groups: CommaList = setting(
        "DAGOPS_RUN_SECURITY_GROUPS", [], "run tasks' security groups, comma-separated", "a list"
    )
    capacity_provider: Literal["FARGATE", "FARGATE_SPOT"] | None = setting(
        "DAGOPS_RUN_CAPACITY_PROVIDER",
        None,
        "the runs' capacity provider: FARGATE or FARGATE_SPOT",
        "one of FARGATE or FARGATE_SPOT",
        sentence="{name} is {value!r}: expected one of FARGATE, FARGATE_SPOT.",
    )

    @field_validator("subnets", "security_groups", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return (
            [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value
        )


class OperatorSettings(_Settings):
    """The operator's tools (repos, outputs)."""

    git_timeout: float = seconds("DAGOPS_GIT_TIMEOUT", 300.0, "seconds one git command may take")
    outputs_file: Path | None = setting(
        "DAGOPS_TF_OUTPUTS_FILE", None, "a `tofu output -json` file to use instead of the state", "a file"
    )


class ImageSettings(_Settings):
    """The runtime image's base images (``invoke image.build``; operator.aws.image checks the references)."""

    python_image: str | None = setting(
        "DAGOPS_PYTHON_IMAGE", None, "the Python base image (default: the Dockerfile's)", "an image reference"
    )
    uv_image: str | None = setting(
        "DAGOPS_UV_IMAGE", None, "the uv image (default: the Dockerfile's)", "an image reference"
    )


S = TypeVar("S", bound=_Settings)


def load(
    group: type[S],
    options: dict[str, tuple[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> S:
    """Read ``group`` from the process environment, or from ``environ`` alone when given.

    ``options``: field name -> (option name, value or None) given on a command line; a value wins over
    the variable. A bad value raises ConfigError of one sentence naming the variable or the option.
    """
    given = {name: value for name, (_flag, value) in (options or {}).items() if value is not None}
    values = {_env_name(group, name): value for name, value in given.items()}
    given_environ = _GIVEN_ENVIRON.set(environ is not None)
    try:
        if environ is not None:
            declared = {_env_name(group, name) for name in group.model_fields}
            values = {**{k: v for k, v in environ.items() if k in declared}, **values}
        return group(**values)
    except ValidationError as exc:
        raise ConfigError(_one_sentence(group, exc, options or {}, given)) from None
    finally:
        _GIVEN_ENVIRON.reset(given_environ)


def _env_name(group: type[_Settings], name: str) -> str:
    return str(group.model_fields[name].validation_alias)


def _one_sentence(
    group: type[_Settings], exc: ValidationError, options: dict[str, tuple[str, Any]], given: dict[str, Any]
) -> str:
    error = exc.errors()[0]
    env = str(error["loc"][0]) if error["loc"] else "?"
    name = next((n for n, f in group.model_fields.items() if f.validation_alias == env), None)
    field = group.model_fields.get(name or "")
    extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
    where = options[name][0] if name in given and name in options else env
    raw = error.get("input")
    if extra.get("sentence"):
        return str(extra["sentence"]).format(name=where, value=str(raw))
    sentence = f"{where}={str(raw)!r} is not {extra.get('expect') or 'valid'}"
    if extra.get("bound") and error["type"] in ("greater_than", "greater_than_equal", "less_than_equal"):
        sentence += f": it must be {extra['bound']}"
    return sentence + "."


def variables(values: _Settings) -> dict[str, Any]:
    """A loaded group's values by variable name (``DAGSTER_PG_HOST`` -> its value or default)."""
    group = type(values)
    return {_env_name(group, name): getattr(values, name) for name in group.model_fields}


def bucket() -> str:
    """The S3 bucket that holds dags/<location>/, compute logs and assets."""
    value = load(S3Settings).bucket
    if not value:
        raise ConfigError(
            f"{BUCKET_VAR} is not set (the S3 bucket that holds the DAG code); set it and start again."
        )
    return value


def location_prefix(location: str) -> str:
    """The S3 key prefix of one code location's code: ``dags/<location>/``."""
    return f"{DAGS_PREFIX}/{location}/"
