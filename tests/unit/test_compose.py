"""compose/: the local Docker stack is well formed, follows the house rules, and its settings agree.

Checked three ways: the Compose Specification's JSON schema (shipped by check-jsonschema), the docker
CLI's own `docker compose config` where the compose plugin is installed (it needs no engine), and the
structural rules below, which always run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker_engine import REQUIRE_DOCKER, docker_required

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose"
STATEFUL = ("postgres",)
# Services on third-party images, each named by a variable whose default is the public image.
IMAGE_VARS = {"postgres": "DAGOPS_POSTGRES_IMAGE", "s3": "DAGOPS_MOTO_IMAGE"}
DEFAULTED = re.compile(r"^\$\{(\w+):-([^}]+)\}$")
ONE_SHOTS = ("create-bucket", "publisher")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def _local_env() -> dict[str, str]:
    env = {}
    for line in (COMPOSE / "local.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def test_matches_the_compose_specification_schema() -> None:
    pytest.importorskip(
        "check_jsonschema", reason="check-jsonschema (ships the compose-spec schema) not installed"
    )
    import importlib.resources

    import jsonschema

    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    document = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]

    broken = {**document, "services": {**document["services"], "webserver": {"image": "x", "ports": "3000"}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))  # the schema does catch mistakes


def test_docker_compose_config_accepts_it() -> None:
    docker = shutil.which("docker")
    plugin = (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    )
    if not plugin:
        reason = "the docker compose plugin is not installed (`docker compose version` failed)"
        if docker_required():  # CI installs the plugin with the engine (.ci/docker-engine.sh)
            pytest.fail(f"{reason}, and {REQUIRE_DOCKER}=1 says this run needs it.", pytrace=False)
        pytest.skip(f"{reason}; set {REQUIRE_DOCKER}=1 to make that a failure.")
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_house_rules(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    services = compose["services"]
    assert set(services) >= {*STATEFUL, *ONE_SHOTS, "s3", "code-location-main", "webserver", "daemon"}
    for name, service in services.items():
        assert "container_name" not in service, name
        match = DEFAULTED.match(service["image"])
        assert match, f"{name}: the image is not a ${{VARIABLE:-default}}: {service['image']}"
        variable, image = match.groups()
        if "build" in service:
            assert service["build"]["dockerfile"] == "images/Dockerfile", name
            assert variable == "DAGOPS_IMAGE", name
        else:  # third-party images: a variable whose default is pinned to a release, never latest
            assert variable == IMAGE_VARS[name], name
            tag = image.rsplit(":", 1)[-1] if ":" in image else ""
            assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: unpinned image {image}"
    for name in STATEFUL:
        assert "healthcheck" in services[name], name
        assert any(v.split(":")[0] in compose["volumes"] for v in services[name]["volumes"]), name
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no", name


def test_dependents_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    waits = 0
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert isinstance(spec, dict), f"{name}: depends_on {dependency} has no condition"
            expected = "service_completed_successfully" if dependency in ONE_SHOTS else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dependency}"
            assert dependency in ONE_SHOTS or "healthcheck" in services[dependency]
            waits += 1
    assert waits >= 6
    assert services["webserver"]["depends_on"].keys() >= {"postgres", "code-location-main"}
    assert services["daemon"]["depends_on"].keys() >= {"postgres", "code-location-main"}


def test_no_secret_is_written_inline(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), name
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert value is None or str(value).startswith("${"), f"{name}: {key} set inline"
    text = (COMPOSE / "docker-compose.yml").read_text()
    for secret in ("local-only-dagster", "local-only-s3-secret"):
        assert secret not in text


def test_published_ports_stay_on_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is reachable from the network"
    # Ports follow `invoke dev`'s dev.ui_port / dev.s3_port (dagops.operator.devstack.compose.stack_env).
    assert "127.0.0.1:${DAGOPS_UI_PORT:-3000}:3000" in compose["services"]["webserver"]["ports"]
    assert "127.0.0.1:${DAGOPS_S3_PORT:-9000}:5000" in compose["services"]["s3"]["ports"]


def test_roles_mounts_and_workspace_agree(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["webserver"]["command"] == ["webserver"]
    assert services["daemon"]["command"] == ["daemon"]
    assert services["publisher"]["command"] == ["publish"]
    for name in ("webserver", "daemon"):
        mounts = services[name]["volumes"]
        assert "./dagster.yaml:/opt/dagster/compose/dagster.yaml:ro" in mounts
        assert "./workspace.yaml:/opt/dagster/compose/workspace.yaml:ro" in mounts
        env = services[name]["environment"]
        assert env["DAGOPS_INSTANCE_TEMPLATE"] == "/opt/dagster/compose/dagster.yaml"
        assert env["DAGOPS_WORKSPACE"] == "/opt/dagster/compose/workspace.yaml"

    workspace = yaml.safe_load((COMPOSE / "workspace.yaml").read_text())
    for entry in workspace["load_from"]:
        server = entry["grpc_server"]
        service = services[server["host"]]
        assert service["command"] == ["code-location"]
        assert service["environment"]["DAGOPS_LOCATION"] == server["location_name"]
        assert server["port"] == 4000
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "dagops.runtime.sync", "status"]
    registered = {
        loc["name"]
        for loc in yaml.safe_load((REPO / "code_locations" / "locations.yaml").read_text())["locations"]
    }
    assert {e["grpc_server"]["location_name"] for e in workspace["load_from"]} <= registered


def test_local_settings_are_consistent() -> None:
    env = _local_env()
    assert env["DAGSTER_PG_PASSWORD"] == env["POSTGRES_PASSWORD"]
    assert env["DAGSTER_PG_USERNAME"] == env["POSTGRES_USER"]
    assert env["DAGSTER_PG_DB"] == env["POSTGRES_DB"]
    assert env["AWS_ENDPOINT_URL"] == "http://s3:5000"  # moto's server, service s3
    assert env["DAGOPS_ENV"] == "local"
    # Every variable the instance config reads is provided (the entrypoint adds the log prefix).
    wanted = set(re.findall(r"\{env: (\w+)\}", (COMPOSE / "dagster.yaml").read_text()))
    assert wanted - set(env) == {"DAGOPS_COMPUTE_LOG_PREFIX"}


def test_compose_instance_config_is_valid_for_dagster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.instance.ref import InstanceRef
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    from dagops.runtime.entrypoint import plan

    for name, value in _local_env().items():
        monkeypatch.setenv(name, value)
    workspace = COMPOSE / "workspace.yaml"
    env = {
        **_local_env(),
        "DAGSTER_HOME": str(tmp_path),
        "DAGOPS_INSTANCE_TEMPLATE": str(COMPOSE / "dagster.yaml"),
        "DAGOPS_WORKSPACE": str(workspace),
    }
    launch = plan(["webserver"], env)
    (tmp_path / "dagster.yaml").write_text(launch.files[str(tmp_path / "dagster.yaml")])
    monkeypatch.setenv("DAGOPS_COMPUTE_LOG_PREFIX", launch.env["DAGOPS_COMPUTE_LOG_PREFIX"])

    ref = InstanceRef.from_dir(str(tmp_path))
    assert ref.run_launcher_data is not None
    assert ref.run_launcher_data.class_name == "DefaultRunLauncher"
    logs = ref.compute_logs_data.rehydrate(S3ComputeLogManager)
    assert (logs._s3_bucket, logs._s3_prefix) == ("dagops-local", "logs/local")
