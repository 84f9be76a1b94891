"""The runtime image's entrypoint: one image, four roles, chosen by the container command.

``dagops-entrypoint webserver | daemon | code-location | dagster ...``

- ``webserver`` / ``daemon``: render workspace.yaml (from ``DAGOPS_CODE_LOCATIONS``) and the instance's
  dagster.yaml into ``DAGSTER_HOME``, then exec dagster-webserver / dagster-daemon.
- ``code-location``: exec the sync agent (``python -m dagops.runtime.sync run``), which serves the location's
  code.
- ``db-setup``: a one-off task (``invoke deploy.db-setup``): create or update Dagster's own database role
  (``dagops.runtime.db_setup``) with the RDS master password read from Secrets Manager at that moment.
- ``dagster ...``: a run task started by the EcsRunLauncher: sync the run's code location once into the
  same path the code server uses, then exec the given command inside that tree.

Every required setting is checked before anything starts: a missing or bad one is one line on stderr and
exit 1. The variables are declared, typed, in dagops.settings (``EnvironmentSettings``, ``PostgresSettings``,
``InstanceSettings``, ``RunTaskSettings``, ``LocationSettings``, ``DatabaseSetupSettings``) and read from the
mapping ``plan`` is given, which is also the environment of the process it starts; which role needs which
of them is decided here. The final process replaces this one (``os.execvp``) so ECS's SIGTERM reaches
Dagster directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from dagops import settings, workspace
from dagops.errors import ConfigError, DagopsError
from dagops.names import validate_location_name
from dagops.settings import (
    BUCKET_VAR,
    DatabaseSetupSettings,
    EnvironmentSettings,
    InstanceSettings,
    LocationSettings,
    PathSettings,
    PostgresSettings,
    RunTaskSettings,
    S3Settings,
    load,
)

ROLES = ("webserver", "daemon", "code-location", "publish", "db-setup")
# What a Dagster process needs to reach its storage. DAGSTER_PG_AUTH says how it logs in: a password from
# DAGSTER_PG_PASSWORD, or an RDS IAM token generated for each new connection (dagster-postgres' aws_wif
# auth provider), so the password of the RDS master user can rotate under running processes
# (modules/database/README.md).
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD")
STORAGE_KEYS = ("run_storage", "event_log_storage", "schedule_storage")
WEBSERVER_PORT = "3000"
# Run launcher classes that take run_task_kwargs (ours: dagops.runtime.ecs_run_launcher, a subclass).
ECS_LAUNCHERS = ("EcsRunLauncher", "LocationRoleEcsRunLauncher")
USAGE = "usage: dagops-entrypoint webserver | daemon | code-location | publish | db-setup | dagster <args...>"


@dataclass
class Launch:
    """What to start: the command, its environment, its working directory and the files to write first."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    sync_first: str | None = None  # a code location to sync once before starting (run tasks)
    publish_root: str | None = None  # publish every registered location from this checkout, then exit


def _require(values: Mapping[str, Any], names: Sequence[str], role: str) -> None:
    """Raise ConfigError naming each of ``names`` that is unset in ``values`` (variable name -> value)."""
    missing = [name for name in names if values.get(name) is None]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
            f"(needed by the {role} role)."
        )


def _pg_vars(pg: PostgresSettings) -> list[str]:
    """The database settings a Dagster process needs: no password when it logs in with IAM tokens."""
    return [v for v in PG_VARS if not (v == "DAGSTER_PG_PASSWORD" and pg.auth == "iam")]


def parse_code_locations(value: str) -> list[tuple[str, str, int]]:
    """``name=host:port,...`` -> ``[(name, host, port), ...]``; raise ConfigError on any malformed entry."""
    servers: list[tuple[str, str, int]] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, address = item.partition("=")
        host, colon, port = address.rpartition(":")
        if not sep or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"DAGOPS_CODE_LOCATIONS entry {item!r} is malformed: expected name=host:port "
                "(for example main=code-main:4000)."
            )
        try:
            validate_location_name(name)
        except DagopsError as exc:
            raise ConfigError(f"DAGOPS_CODE_LOCATIONS: {exc}") from None
        servers.append((name, host, int(port)))
    if not servers:
        raise ConfigError(
            "DAGOPS_CODE_LOCATIONS is empty: expected name=host:port,... (one per code location)."
        )
    names = [name for name, _, _ in servers]
    if len(set(names)) != len(names):
        raise ConfigError("DAGOPS_CODE_LOCATIONS names a code location twice.")
    return servers


def render_instance(template: str, env: Mapping[str, str]) -> str:
    """The instance dagster.yaml: the template, plus the run tasks' network and capacity (RunTaskSettings).

    Dagster's config can read a string from an environment variable but cannot split one into a list,
    so the subnets and security groups of run tasks are filled in here when the template uses the
    EcsRunLauncher and ``DAGOPS_RUN_SUBNETS`` is set (otherwise runs reuse the daemon task's network),
    and ``DAGOPS_RUN_CAPACITY_PROVIDER`` (FARGATE or FARGATE_SPOT) becomes the runs' capacity-provider
    strategy. With ``DAGSTER_PG_AUTH=iam`` the storages log in with an RDS IAM token per new connection
    instead of the password.
    """
    try:
        config = yaml.safe_load(template) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"The instance config template is not valid YAML: {exc}.") from None
    if load(PostgresSettings, environ=env).auth == "iam":
        for key in STORAGE_KEYS:
            storage_config = (config.get(key) or {}).get("config") or {}
            if isinstance(storage_config.get("postgres_db"), dict):
                storage_config["postgres_db"] = {
                    k: v for k, v in storage_config["postgres_db"].items() if k != "password"
                }
                # A token per new connection, from the task role's credentials (rds-db:connect).
                storage_config["auth_provider"] = {"aws_wif": {"region": {"env": "AWS_DEFAULT_REGION"}}}
    launcher = config.get("run_launcher") or {}
    if launcher.get("class") not in ECS_LAUNCHERS:
        return yaml.safe_dump(config, sort_keys=False)
    launcher_config = launcher.setdefault("config", {}) or {}
    launcher["config"] = launcher_config
    kwargs = launcher_config.setdefault("run_task_kwargs", {}) or {}
    launcher_config["run_task_kwargs"] = kwargs
    runs = load(RunTaskSettings, environ=env)
    if runs.subnets:
        vpc: dict[str, Any] = {"subnets": runs.subnets, "assignPublicIp": "ENABLED"}
        if runs.security_groups:
            vpc["securityGroups"] = runs.security_groups
        kwargs["networkConfiguration"] = {"awsvpcConfiguration": vpc}
    if runs.capacity_provider:
        # dagster-aws copies the daemon task's launchType otherwise, which overrides the cluster's
        # default strategy (runs would never use Spot); with a strategy set, it drops launchType.
        kwargs["capacityProviderStrategy"] = [{"capacityProvider": runs.capacity_provider, "weight": 1}]
    if not kwargs:
        del launcher_config["run_task_kwargs"]
    return yaml.safe_dump(config, sort_keys=False)


def _location_from_command(args: Sequence[str], code_dir: Path) -> str:
    """The code location of a ``dagster api execute_run <json>`` command (the run's job origin).

    The job origin's code pointer names the file the code server loaded, ``<code_dir>/<location>/current/
    <entry>`` (dagops.runtime.sync.codeserver), so the location is the folder under the code dir; a
    ``location_name`` field, where an origin carries one, names it directly.
    """

    def from_path(value: str) -> str | None:
        try:
            parts = PurePosixPath(value).relative_to(PurePosixPath(code_dir)).parts
        except ValueError:
            return None
        return parts[0] if len(parts) >= 2 and parts[1] == "current" else None

    def find(node: Any) -> str | None:
        if isinstance(node, dict):
            value = node.get("location_name")
            if isinstance(value, str) and value:
                return value
            for child in node.values():
                found = find(child)
                if found:
                    return found
        elif isinstance(node, list):
            for child in node:
                found = find(child)
                if found:
                    return found
        elif isinstance(node, str):
            return from_path(node)
        return None

    for arg in args:
        if arg.lstrip().startswith("{"):
            try:
                found = find(json.loads(arg))
            except ValueError:
                continue
            if found:
                return found
    return ""


def _common_env(
    env: Mapping[str, str], pg: PostgresSettings, environment: EnvironmentSettings
) -> dict[str, str]:
    """The environment of every role's process: ``env`` with the database port and the compute log
    prefix filled in (their defaults are read by Dagster's config, which has no defaults of its own)."""
    out = dict(env)
    out["DAGSTER_PG_PORT"] = str(pg.port)
    if not environment.compute_log_prefix and environment.name:
        out["DAGOPS_COMPUTE_LOG_PREFIX"] = f"logs/{environment.name}"
    return out


def plan(args: Sequence[str], env: Mapping[str, str]) -> Launch:
    """Decide what to start for ``args`` (the container command) under ``env``; raise ConfigError if unfit."""
    if not args:
        raise ConfigError(f"No role given; {USAGE}")
    role, rest = args[0], list(args[1:])
    if role not in ROLES and not role.startswith("dagster"):
        raise ConfigError(f"Unknown role {role!r}; {USAGE}")
    _require({BUCKET_VAR: load(S3Settings, environ=env).bucket}, [BUCKET_VAR], role)
    # Every role's process gets the database port (Dagster's config reads it), so every role reads it.
    pg, environment = load(PostgresSettings, environ=env), load(EnvironmentSettings, environ=env)
    found = {**settings.variables(pg), **settings.variables(environment)}
    out = _common_env(env, pg, environment)

    if role in ("webserver", "daemon"):
        _require(found, [*_pg_vars(pg), "DAGOPS_ENV"], role)
        instance = load(InstanceSettings, environ=env)
        home = instance.home
        out["DAGSTER_HOME"] = str(home)
        files: dict[str, str] = {}
        if instance.workspace:  # a workspace.yaml given as is (the compose stack mounts one)
            workspace_file = str(instance.workspace)
            if not instance.workspace.is_file():
                raise ConfigError(f"DAGOPS_WORKSPACE names {workspace_file}, which is not a file.")
        else:
            if not instance.code_locations:
                raise ConfigError(
                    f"DAGOPS_CODE_LOCATIONS is not set (needed by the {role} role: name=host:port,...)."
                )
            workspace_file = str(home / "workspace.yaml")
            files[workspace_file] = workspace.render(parse_code_locations(instance.code_locations))
        template = instance.instance_template
        if template:
            try:
                text = Path(template).read_text()
            except OSError as exc:
                raise ConfigError(
                    f"Cannot read the instance config template {template}: {exc.strerror}."
                ) from None
            files[str(home / "dagster.yaml")] = render_instance(text, out)
        elif not (home / "dagster.yaml").is_file():
            raise ConfigError(
                f"No dagster.yaml in DAGSTER_HOME ({home}) and DAGOPS_INSTANCE_TEMPLATE is not set."
            )
        if role == "webserver":
            argv = ["dagster-webserver", "-h", "0.0.0.0", "-p", WEBSERVER_PORT, "-w", workspace_file, *rest]  # noqa: S104
        else:
            argv = ["dagster-daemon", "run", "-w", workspace_file, *rest]
        return Launch(argv=argv, env=out, cwd=str(home), files=files)

    if role == "code-location":
        served = load(LocationSettings, environ=env).location
        _require({"DAGOPS_LOCATION": served}, ["DAGOPS_LOCATION"], role)
        location = _valid_location(str(served))
        argv = [sys.executable, "-m", "dagops.runtime.sync", "run", "--location", location, *rest]
        return Launch(argv=argv, env=out)

    if role == "publish":
        root = load(PathSettings, environ=env).root
        if not root or not root.is_dir():
            raise ConfigError("DAGOPS_ROOT must name the checkout (with code_locations/) to publish from.")
        return Launch(argv=[], env=out, publish_root=str(root))

    if role == "db-setup":
        # One-off: create Dagster's database role from the master secret, read at this moment.
        setup = settings.variables(load(DatabaseSetupSettings, environ=env))
        _require({**found, **setup}, [*PG_VARS[:3], "DAGOPS_DB_MASTER_SECRET_ARN"], role)
        return Launch(argv=[sys.executable, "-m", "dagops.runtime.db_setup", *rest], env=out)

    # A run task: the EcsRunLauncher overrides the command with `dagster api execute_run <json>`.
    _require(found, _pg_vars(pg), "run")
    placed = load(LocationSettings, environ=env)
    code_dir = placed.code_dir
    location = placed.location or _location_from_command(rest, code_dir)
    if not location:
        raise ConfigError("DAGOPS_LOCATION is not set and the run command names no code location.")
    location = _valid_location(location)
    return Launch(argv=[role, *rest], env=out, cwd=str(code_dir / location / "current"), sync_first=location)


def _valid_location(name: str) -> str:
    try:
        return validate_location_name(name)
    except DagopsError as exc:
        raise ConfigError(str(exc)) from None


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def publish_all(root: Path) -> int:
    """Publish every code location of the registry under ``root`` to the bucket (the compose publisher)."""
    from dagops import registry
    from dagops.publish import publish_location, s3_client

    bucket, s3 = settings.bucket(), s3_client()
    for location in registry.load(root):
        print(
            publish_location(s3, bucket, location.name, location.path(root), location.entry).summary(),
            flush=True,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Validate, prepare, then replace this process with the role's process (exit 1 on a bad setting)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        launch = plan(args, os.environ)
        if launch.publish_root:
            return publish_all(Path(launch.publish_root))
        for path, text in launch.files.items():
            try:
                _write(path, text)
            except OSError as exc:
                raise ConfigError(f"Cannot write {path}: {exc.strerror}.") from None
        if launch.sync_first:
            sync = [sys.executable, "-m", "dagops.runtime.sync", "once", "--location", launch.sync_first]
            if subprocess.run(sync, env=launch.env, check=False).returncode != 0:
                raise ConfigError(
                    f"The code of location {launch.sync_first!r} could not be synced; the run cannot start."
                )
            if launch.cwd:
                # The location's own requirements (installed by `once`, so a cache hit) go on PYTHONPATH.
                from dagops.runtime.requirements import location_env
                from dagops.runtime.sync.layout import LocationDir
                from dagops.runtime.sync.target import resolve

                current = Path(launch.cwd)
                served = LocationDir(current.parent.parent, current.parent.name).current_manifest()
                entry = served.entry if served else None
                launch.env = location_env(current, current.parent.parent, launch.env, entry=entry)
                if entry:  # runs start in the project's folder, as the code server does
                    launch.cwd = str(resolve(current, entry).project_dir)
        if launch.cwd:
            if not Path(launch.cwd).is_dir():
                raise ConfigError(f"The working directory {launch.cwd} does not exist.")
            os.chdir(launch.cwd)
        try:
            os.execvpe(launch.argv[0], launch.argv, launch.env)  # noqa: S606 (argument list, no shell)
        except OSError as exc:
            raise ConfigError(f"Cannot start {launch.argv[0]}: {exc.strerror}.") from None
    except DagopsError as exc:
        print(f"dagops-entrypoint: {exc}", file=sys.stderr)
        return 1
    return 0  # not reached: execvpe replaces this process


if __name__ == "__main__":
    sys.exit(main())
