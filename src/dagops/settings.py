"""Settings read from the environment: every ``DAGOPS_*``/``DAGSTER_*`` variable the code reads by name is
declared here once, typed, with its default and a one-line description (README: "Container settings").
Two readers keep their own, typed and checked where they are: the container entrypoint's roles
(runtime.entrypoint, runtime.db_setup: Dagster's Postgres settings and the run launcher's, read from the
mapping they also pass on to the process they start) and the local stack's ``DAGOPS_DEV_*`` (layered
over invoke.yaml's ``dev:`` mapping in operator.devstack.config).

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
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dagops.errors import ConfigError

BUCKET_VAR = "DAGSTER_S3_BUCKET"
DAGS_PREFIX = "dags"
# An IAM role ARN (ASCII names, as IAM allows), anchored: pydantic's pattern is a search.
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$"


def setting(env: str, default: Any, description: str, expect: str, bound: str = "", **rules: Any) -> Any:
    """A field read from variable ``env``: ``expect`` completes "X='v' is not ..." in its error; ``bound``
    (e.g. "positive") is added when a value of the right type breaks a rule such as ``gt=0``."""
    extra: dict[str, Any] = {"expect": expect, "bound": bound}
    return Field(default, validation_alias=env, description=description, json_schema_extra=extra, **rules)


def seconds(env: str, default: float, description: str) -> Any:
    """A positive number of seconds (an interval, a timeout)."""
    return setting(env, default, description, "a number of seconds", "positive", gt=0)


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", allow_inf_nan=False)

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


class SyncSettings(_Settings):
    """The sync agent of one code location (``python -m dagops.runtime.sync``)."""

    location: str | None = setting("DAGOPS_LOCATION", None, "the code location this agent serves", "a name")
    code_dir: Path = setting(
        "DAGOPS_CODE_DIR", Path("/opt/dagster/code"), "where synced trees live", "a folder"
    )
    interval: float = seconds("DAGOPS_SYNC_INTERVAL", 60.0, "seconds between polls")
    grpc_host: str = setting(
        "DAGOPS_GRPC_HOST",
        "0.0.0.0",  # noqa: S104 - the code server listens for the webserver and daemon in other tasks
        "the code server's listen host",
        "a host",
    )
    grpc_port: int = setting(
        "DAGOPS_GRPC_PORT",
        4000,
        "the code server's gRPC port",
        "a port number",
        "from 1 to 65535",
        ge=1,
        le=65535,
    )
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
    """Where things are on the operator's machine (dagops.paths)."""

    root: Path | None = setting(
        "DAGOPS_ROOT", None, "the repository root (default: found from here)", "a folder"
    )
    state_dir: Path | None = setting(
        "DAGOPS_STATE_DIR", None, "the local stack's state (default: <root>/.dagops)", "a folder"
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
    """Read ``group`` from the environment (or from ``environ`` alone when given).

    ``options``: field name -> (option name, value or None) given on a command line; a value wins over
    the variable. A bad value raises ConfigError of one sentence naming the variable or the option.
    """
    given = {name: value for name, (_flag, value) in (options or {}).items() if value is not None}
    values = {_env_name(group, name): value for name, value in given.items()}
    try:
        if environ is None:
            return group(**values)
        return group.model_validate({**environ, **values})
    except ValidationError as exc:
        raise ConfigError(_one_sentence(group, exc, options or {}, given)) from None


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
    sentence = f"{where}={str(raw)!r} is not {extra.get('expect') or 'valid'}"
    if extra.get("bound") and error["type"] in ("greater_than", "greater_than_equal", "less_than_equal"):
        sentence += f": it must be {extra['bound']}"
    return sentence + "."


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
