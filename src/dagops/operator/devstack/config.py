"""Settings of the local stack: defaults < invoke.yaml's ``dev:`` mapping < ``DAGOPS_DEV_*`` variables."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dagops.errors import ConfigError, DagopsError
from dagops.paths import repo_root, state_dir
from dagops.ports import free_port as free_port
from dagops.ports import port_in_use as port_in_use

ENV_PREFIX = "DAGOPS_DEV_"
MODES = ("auto", "embedded", "compose")
STORAGES = ("auto", "postgres", "sqlite")
_KINDS = {int: "a whole number", float: "a number of seconds"}


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _boolean(name: str, value: Any) -> bool:
    """A yes/no setting: a YAML boolean, or true/false, yes/no, on/off, 1/0 as text (environment)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(
        f"Setting dev.{name} ({ENV_PREFIX}{name.upper()}) must be true or false, got {value!r}."
    )


@dataclass(frozen=True)
class DevConfig:
    """Everything `invoke dev` needs to know; every field is a key of invoke.yaml's ``dev:`` mapping."""

    mode: str = "auto"
    # auto: Postgres when its binaries are installed (or postgres_host is set), else SQLite.
    storage: str = "auto"
    host: str = "127.0.0.1"
    ui_port: int = 3000
    s3_port: int = 9000
    postgres_port: int = 5433
    code_server_base_port: int = 4000
    bucket: str = "dagops-local"
    # Two seconds locally: an idle poll is one small GET on loopback, so a saved change shows up
    # almost at once; the 60 s default is for AWS, where every request is billed.
    sync_interval: float = 2.0
    max_concurrent_runs: int = 4
    stop_timeout: float = 15.0
    startup_timeout: float = 180.0
    # An existing Postgres to use instead of starting one (a container, a shared server): its host.
    postgres_host: str = ""
    postgres_user: str = "dagster"
    # Trust auth on loopback: the password is a formality for clients that insist on one.
    postgres_password: str = "dagster"  # noqa: S105
    postgres_db: str = "dagster"
    # An existing S3-compatible endpoint (MinIO, a moto server) instead of starting moto on s3_port.
    s3_url: str = ""
    # Where the state lives; empty means dagops.paths.state_dir() (DAGOPS_STATE_DIR or .dagops/).
    state_dir: str = ""
    # Publish a code location of code_locations/ as soon as one of its files is saved
    # (dagops.operator.code_watch).
    watch: bool = True

    @classmethod
    def resolve(
        cls,
        mapping: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> DevConfig:
        """Defaults < ``mapping`` (invoke.yaml ``dev:``) < ``DAGOPS_DEV_<KEY>`` < non-None ``overrides``."""
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in (mapping or {}).items():
            if key in known and value is not None:
                values[key] = value
        for name in known:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw not in (None, ""):
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None and k in known})
        converted: dict[str, Any] = {}
        for name, value in values.items():
            kind = type(getattr(cls, name)) if hasattr(cls, name) else str
            if kind is bool:
                converted[name] = _boolean(name, value)
                continue
            try:
                converted[name] = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"Setting dev.{name} ({ENV_PREFIX}{name.upper()}) must be "
                    f"{_KINDS.get(kind, 'a string')}, got {value!r}."
                ) from None
        config = cls(**converted)
        config.validate()
        return config

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"Setting dev.mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if self.storage not in STORAGES:
            raise ConfigError(
                f"Setting dev.storage must be one of {', '.join(STORAGES)}, got {self.storage!r}."
            )
        for name in ("ui_port", "s3_port", "postgres_port", "code_server_base_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ConfigError(f"Setting dev.{name} must be a TCP port (1-65535), got {port}.")
        if self.s3_url and not re.fullmatch(r"https?://[A-Za-z0-9.\[\]:-]+(:[0-9]{1,5})?/?", self.s3_url):
            raise ConfigError(
                "Setting dev.s3_url must be an http(s)://host[:port] URL of an S3 endpoint, "
                f"got {self.s3_url!r}."
            )
        if self.sync_interval <= 0:
            raise ConfigError(
                f"Setting dev.sync_interval must be a positive number of seconds, got {self.sync_interval}."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # Paths -----------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return repo_root()

    @property
    def state(self) -> Path:
        return Path(self.state_dir).resolve() if self.state_dir else state_dir()

    @property
    def postgres_dir(self) -> Path:
        return self.state / "postgres"

    @property
    def code_dir(self) -> Path:
        return self.state / "code"

    @property
    def dagster_home(self) -> Path:
        return self.state / "dagster_home"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}"

    @property
    def s3_endpoint(self) -> str:
        return self.s3_url or f"http://{self.host}:{self.s3_port}"


def check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """Raise one clear sentence naming the first port of ``ports`` (purpose -> port) that is taken."""
    for purpose, port in ports.items():
        if port_in_use(host, port):
            raise DagopsError(
                f"Port {port} on {host} ({purpose}) is already in use; stop what uses it or choose another "
                f"port (dev.* in invoke.yaml or {ENV_PREFIX}* variables)."
            )
