"""The cloud's own task definitions, run locally: apply live/dev and live/prod to moto, read every ECS
service back and start its task's containers as ECS would (dagops.operator.ecs_local), then check that the
webserver lists every code location LOADED through the Cloud Map names and that the daemon is healthy.

The moto server runs as a container on the shapes' Docker network (alias ``moto``): tofu reaches it on a
published loopback port, the containers by name. Each root is applied as a released environment (a pinned
``image_tag``; tests/infra/test_day_one.py walks the release itself), so every task definition names that
tag and the `run` task definition exists.

The database is a real Postgres container reachable as the RDS endpoint address the task definitions name,
shaped like the RDS instance: TLS on (the instance config asks for ``sslmode=require``), the master user
with the username and password the emulated RDS-managed secret holds, and RDS's ``rds_iam`` role. As on a
first release (`invoke deploy`), the ``db-setup`` one-off task runs from the `run` task definition with
the overrides `dagops.operator.aws.db` gives RunTask, and creates Dagster's own role before any service
starts; the services then log in as that role with an RDS IAM token per connection (``DAGSTER_PG_AUTH=iam``).

The code of each location is published to the emulated bucket first, as `invoke deploy` does; each code
location's SQS queue of S3 events (``DAGOPS_SYNC_QUEUE_URL``) is moto's, reached through the endpoint.
Only the image is replaced: the task definitions name the emulated ECR repository, which cannot be
pulled; the project image built here stands in (one override, visible in ``start_shape``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from polling import wait_for
from stacks import (
    MOTO_IMAGE,
    POSTGRES_IMAGE,
    docker,
    project_image,
    published_port,
    require_engine,
    unique,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "infra"))
from test_emulated_apply import LOCATIONS, Deployment  # noqa: E402
from tfharness import REGION, Tofu, copy_tree, find_binary, make_tofu, write_override  # noqa: E402

from dagops import webserver  # noqa: E402
from dagops.operator.aws.db import CONTAINER as RUN_CONTAINER  # noqa: E402
from dagops.operator.ecs_local.service import ServiceTask, service_tasks  # noqa: E402
from dagops.operator.ecs_local.task import LocalTask, start_task  # noqa: E402
from dagops.publish import publish_location  # noqa: E402

FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DAEMON_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
LOADED_TIMEOUT = 420.0
TAG = "0123456789ab"  # the released image tag the roots are applied with
APP_ROLE = "dagster_app"


@dataclass
class MotoContainer:
    """A moto server container on ``network`` (alias ``moto``), published on a loopback port for tofu."""

    name: str
    network: str
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        docker(
            "run", "--detach", "--name", self.name, "--network", self.network, "--network-alias", "moto",
            "--publish", "127.0.0.1::5000", "--env", "MOTO_IAM_LOAD_MANAGED_POLICIES=false", MOTO_IMAGE,
        )  # fmt: skip
        self.port = published_port(self.name, 5000)

        def answers() -> bool:
            try:
                boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, **_keys()).list_buckets()
            except Exception:
                return False
            return True

        wait_for(answers, 60, "the moto container", interval=0.5)

    def stop(self) -> None:
        docker("rm", "--force", self.name, check=False)


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class Shape:
    env: str
    network: str
    image: str
    deployment: Deployment
    tasks: list[LocalTask] = field(default_factory=list)
    services: list[ServiceTask] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return self.deployment.client(service)


@pytest.fixture(scope="module")
def shapes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Shape]]:
    require_engine(POSTGRES_IMAGE, MOTO_IMAGE)
    image = project_image(request)
    require_engine(image)
    binary = find_binary()
    if binary is None:
        pytest.fail("neither tofu nor terraform is on PATH: the cloud shape needs an apply")
    tofu = make_tofu(binary, tmp_path_factory.mktemp("tfhome"))
    with applied_shapes(("dev", "prod"), image, tofu, tmp_path_factory.mktemp("cloudshape")) as made:
        yield made


@contextlib.contextmanager
def applied_shapes(envs: Iterable[str], image: str, tofu: Tofu, base: Path) -> Iterator[dict[str, Shape]]:
    """Each root of ``envs`` applied (side by side) to its own moto container on its own Docker network;
    every container, task and network removed after. ``benchmarks/cloudshape.py`` uses it too."""
    made: dict[str, Shape] = {}
    try:
        for env in envs:
            network = unique(f"cloud-{env}")
            docker("network", "create", network)
            moto = MotoContainer(name=f"{network}-moto", network=network)
            made[env] = Shape(env=env, network=network, image=image, deployment=None)  # type: ignore[arg-type]
            made[env].containers.append(moto.name)
            moto.start()
            root = copy_tree(base / env, locations=LOCATIONS) / "live" / env
            write_override(root, moto.endpoint, base / f"{env}.tfstate")
            made[env].deployment = Deployment(  # type: ignore[arg-type]
                env=env, root=root, moto=moto, tofu=tofu, extra_vars=[f"-var=image_tag={TAG}"]
            )
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(s.deployment.apply) for s in made.values()]
        for shape, future in zip(made.values(), futures, strict=True):
            if future.exception():
                tail = docker("logs", "--tail", "80", shape.containers[0], check=False)
                print(f"--- moto ({shape.env})\n{tail}")
                raise future.exception()  # type: ignore[misc]
        print(f"\n[cloud shape] {' and '.join(made)} applied to moto in {time.monotonic() - started:.0f} s")
        yield made
    finally:
        for shape in made.values():
            for task in shape.tasks:
                task.stop()
            docker("rm", "--force", "--volumes", *shape.containers, check=False)
            docker("network", "rm", shape.network, check=False)


def start_database(shape: Shape, services: list[ServiceTask]) -> dict[str, str]:
    """A Postgres container shaped like the RDS instance, answering as its endpoint; the services' settings.

    The master user is the instance's, its password the one the RDS-managed secret holds (written here in
    RDS's JSON shape: moto's placeholder names another user).
    """
    env: dict[str, str] = {}
    for svc in services:
        for c in svc.task_definition["containerDefinitions"]:
            names = {e["name"]: e["value"] for e in c.get("environment", [])}
            if "DAGSTER_PG_HOST" in names:
                env = names
                # No Dagster container gets the master password, or any database secret.
                assert not [s for s in c.get("secrets", []) if s["name"].startswith("DAGSTER_PG")], c["name"]
    assert env, "no container of the task definitions names a database"
    assert env["DAGSTER_PG_AUTH"] == "iam" and env["DAGSTER_PG_USERNAME"] == APP_ROLE, env
    out = shape.deployment.outputs
    rds = shape.client("rds").describe_db_instances(DBInstanceIdentifier=out["db_instance_identifier"])
    master = rds["DBInstances"][0]["MasterUsername"]
    password = secrets.token_urlsafe(18)
    shape.client("secretsmanager").put_secret_value(
        SecretId=out["db_secret_arn"], SecretString=json.dumps({"username": master, "password": password})
    )
    name = f"{shape.network}-postgres"
    shape.containers.append(name)
    # RDS admits members of rds_iam with a valid IAM token, which only RDS can verify: this pg_hba admits
    # Dagster's role over TLS without checking it (standing in for that check); everyone else needs TLS
    # and a password, as on RDS (rds.force_ssl). Local connections (pg_isready, psql here) are trusted.
    hba = f"local all all trust\nhostssl all {APP_ROLE} all trust\nhostssl all all all scram-sha-256\n"
    # The official image's contract (POSTGRES_*), with TLS on like RDS: Debian's server carries the
    # snakeoil certificate its ssl-cert package makes.
    docker(
        "run", "--detach", "--name", name, "--network", shape.network,
        "--network-alias", env["DAGSTER_PG_HOST"],
        "--env", f"POSTGRES_USER={master}",
        "--env", f"POSTGRES_DB={env['DAGSTER_PG_DB']}",
        "--env", f"POSTGRES_PASSWORD={password}",
        POSTGRES_IMAGE, "postgres", "-c", f"port={env['DAGSTER_PG_PORT']}", "-c", "ssl=on",
        "-c", "ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem",
        "-c", "ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key",
    )  # fmt: skip

    def ready() -> bool:
        probe = ["exec", name, "pg_isready", "-h", "127.0.0.1", "-p", env["DAGSTER_PG_PORT"]]
        return bool(docker(*probe, check=False).endswith("accepting connections"))

    wait_for(ready, 90, "Postgres", interval=1.0)
    psql = ["exec", "-i", "--user", "postgres", name, "psql", "-v", "ON_ERROR_STOP=1", "-qtA",
            "-p", env["DAGSTER_PG_PORT"], "-U", master, "-d", env["DAGSTER_PG_DB"]]  # fmt: skip
    hba_file = docker(*psql, "-c", "SHOW hba_file")
    docker("exec", "--user", "postgres", name, "sh", "-c", f"printf '{hba}' > {hba_file}")
    docker(*psql, "-c", "CREATE ROLE rds_iam", "-c", "SELECT pg_reload_conf()")  # rds_iam: built into RDS
    return env


def run_db_setup(shape: Shape, image_override: dict[str, str], aws_env: dict[str, str]) -> str:
    """The first release's db-setup task (operator.aws.db): the run task definition, RunTask's overrides."""
    out = shape.deployment.outputs
    ecs = shape.client("ecs")
    run = ecs.describe_task_definition(taskDefinition=out["task_definition_families"]["run"])[
        "taskDefinition"
    ]
    overrides = [
        {
            "name": RUN_CONTAINER,
            "command": ["db-setup"],
            "environment": [{"name": "DAGOPS_DB_MASTER_SECRET_ARN", "value": out["db_secret_arn"]}],
        }
    ]
    task = start_task(
        f"{shape.network}-db-setup",
        run,
        network=shape.network,
        image_override=image_override,
        aws_env=aws_env,
        aws_client=shape.client,
        overrides=overrides,
    )
    try:
        code = task.wait_stopped(timeout=180)
        said = task.logs(RUN_CONTAINER)
    finally:
        task.stop()
    assert code == 0, f"db-setup exited {code}:\n{said}"
    assert f"Database role '{APP_ROLE}'" in said and "is ready" in said, said
    return said


def publish_code(shape: Shape) -> None:
    """Every location's code in the emulated bucket, as `invoke deploy` publishes it."""
    s3 = shape.client("s3")
    bucket = shape.deployment.outputs["bucket_name"]
    # moto evaluates the bucket policy's TLS-only Deny without knowing the request's transport, so it
    # denies every object request; AWS applies it to plain-HTTP requests only, and every client here
    # would use HTTPS there. The emulator's copy of the policy goes; what it says is tested in tests/infra.
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert [s["Condition"] for s in policy["Statement"] if s["Effect"] == "Deny"] == [
        {"Bool": {"aws:SecureTransport": "false"}}
    ]
    s3.delete_bucket_policy(Bucket=bucket)
    for location in LOCATIONS:
        publish_location(s3, bucket, location, REPO / "code_locations" / "main", "definitions.py")


def start_shape(shape: Shape) -> tuple[LocalTask, float]:
    """Start every service's task; the task holding the webserver and the start time."""
    out = shape.deployment.outputs
    services = service_tasks(shape.client, out["cluster_name"], list(out["service_names"].values()))
    # Tofu owns the image: every task definition, the run family's too, names the released tag.
    released = f"{out['ecr_repository_url']}:{TAG}"
    run = shape.deployment.task_definition("run")
    named = {c["image"] for svc in services for c in svc.task_definition["containerDefinitions"]}
    assert named | {c["image"] for c in run["containerDefinitions"]} == {released}
    shape.services = services
    start_database(shape, services)
    publish_code(shape)
    # S3 announced each publish to that location's queue (modules/sync-events), as it will on AWS.
    depths = queue_depths(shape)
    assert all(depths.values()), f"a publish sent no event to its location's queue: {depths}"
    # The one rewrite: the emulated ECR image cannot be pulled; the locally built project image stands in.
    image_override = {released: shape.image}
    # The task role's credentials and the endpoint: the emulator (ECS would serve role credentials).
    aws_env = {**FAKE_KEYS, "AWS_ENDPOINT_URL": "http://moto:5000"}
    # A first release: Dagster's database role exists before any service starts (`invoke deploy`).
    run_db_setup(shape, image_override, aws_env)
    started = time.monotonic()
    web_task = None
    for svc in services:
        task = start_task(
            f"{shape.network}-{svc.service}",
            svc.task_definition,
            network=shape.network,
            image_override=image_override,
            aws_env=aws_env,
            aliases=svc.aliases,
            aws_client=shape.client,
        )
        shape.tasks.append(task)
        if any(s.name == "webserver" for s in task.specs):
            web_task = task
    assert web_task is not None, "no service runs the webserver"
    return web_task, started


def _all_loaded(shape: Shape, url: str) -> dict[str, Any] | None:
    for task in shape.tasks:
        task.check()  # an essential container that exits fails the test at once, with its log
    if webserver.server_info(url) is None:
        return None
    found = webserver.locations(url)
    if set(found) == set(LOCATIONS) and all(
        v["loadStatus"] == "LOADED" and not v["error"] for v in found.values()
    ):
        return found
    return None


def _daemon_healthy(shape: Shape, url: str) -> list[dict[str, Any]] | None:
    for task in shape.tasks:
        task.check()
    statuses = webserver.query(url, DAEMON_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    required = [s for s in statuses if s["required"]]
    return required if required and all(s["healthy"] for s in required) else None


def _containers_healthy(shape: Shape) -> bool:
    for task in shape.tasks:
        task.check()  # an unhealthy essential container fails at once
    checked = [(t, s.name) for t in shape.tasks for s in t.specs if s.health_check]
    assert len(checked) == 2 + len(LOCATIONS), "every service container has a health check"
    return all(t.health(name) == "healthy" for t, name in checked)


def queue_depths(shape: Shape) -> dict[str, int]:
    """Messages in each code location's event queue (DAGOPS_SYNC_QUEUE_URL), visible or in flight."""
    sqs = shape.client("sqs")
    depths = {}
    for svc in shape.services:
        for c in svc.task_definition["containerDefinitions"]:
            env = {e["name"]: e["value"] for e in c.get("environment", [])}
            if c["command"] == ["code-location"]:
                attrs = sqs.get_queue_attributes(
                    QueueUrl=env["DAGOPS_SYNC_QUEUE_URL"], AttributeNames=["All"]
                )
                a = attrs["Attributes"]
                depths[c["name"]] = int(a["ApproximateNumberOfMessages"]) + int(
                    a["ApproximateNumberOfMessagesNotVisible"]
                )
    assert len(depths) == len(LOCATIONS), depths
    return depths


@dataclass
class Running:
    webserver: LocalTask
    started: float  # when the shape's service containers started
    url: str
    locations: dict[str, Any] | None = None
    loaded: float = 0.0  # seconds from the start to every location LOADED


@pytest.fixture(scope="module")
def running(shapes: dict[str, Shape]) -> dict[str, Running]:
    """Both shapes started one after the other, then running side by side: each test's wait for the
    daemon's first health probe (one 120 s interval after its start) overlaps the other shape's."""
    out = {}
    for env, shape in shapes.items():
        web_task, started = start_shape(shape)
        out[env] = Running(web_task, started, f"http://127.0.0.1:{web_task.published[3000]}")
    # Both polled in one loop, so each shape's time to LOADED is its own.
    deadline = time.monotonic() + LOADED_TIMEOUT
    while time.monotonic() < deadline and any(r.locations is None for r in out.values()):
        for env, r in out.items():
            if r.locations is None:
                r.locations = _all_loaded(shapes[env], r.url)
                r.loaded = time.monotonic() - r.started
        time.sleep(1)
    return out


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_task_definitions_run_as_ecs_would(
    shapes: dict[str, Shape], running: dict[str, Running], env: str
) -> None:
    shape = shapes[env]
    run = running[env]
    started, url = run.started, run.url
    expected_tasks = 1 if env == "dev" else 2 + len(LOCATIONS)
    assert len(shape.tasks) == expected_tasks
    try:
        locations, loaded = run.locations, run.loaded
        if locations is None:
            raise AssertionError(f"not every code location LOADED ({env}) within {LOADED_TIMEOUT:.0f} s")
        daemons = wait_for(
            lambda: _daemon_healthy(shape, url), 180, f"a healthy daemon ({env})", interval=1.0
        )
        # Every container's own health check (health_checks.json, as ECS runs it) passes: the first probe
        # runs one interval after the start, the daemon's (120 s) last.
        wait_for(lambda: _containers_healthy(shape), 300, f"every container healthy ({env})", interval=2)
    except AssertionError:
        for task in shape.tasks:
            for spec in task.specs:
                print(f"--- {task.name} / {spec.name} ({task.health(spec.name)})\n"
                      f"{task.health_log(spec.name)}\n{task.logs(spec.name, tail=60)}")  # fmt: skip
        raise
    healthy = time.monotonic() - started
    print(f"\n[cloud shape] {env}: every location LOADED {loaded:.0f} s after the containers started; "
          f"every container healthy at {healthy:.0f} s")  # fmt: skip
    # The publish's S3 events reached each location's queue (asserted in start_shape); each agent read
    # and deleted them through the emulator, its queue URL as tofu wrote it.
    wait_for(
        lambda: not any(queue_depths(shape).values()),
        60,
        f"every event queue drained by its agent ({env})",
        interval=1.0,
    )
    assert sorted(locations) == sorted(LOCATIONS)
    assert {d["daemonType"] for d in daemons} >= {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"}
    if env == "prod":
        # Through Cloud Map names: the webserver's workspace points at <location>.<namespace>.
        ns = f"{env}.dagops.internal"
        assert sorted(a for t in shape.tasks for a in ecs_local_aliases(t, shape)) == sorted(
            [f"webserver.{ns}", f"main.{ns}", f"sales-ops.{ns}"]
        )
    for task in shape.tasks:
        task.stop()
    shape.tasks.clear()


def ecs_local_aliases(task: LocalTask, shape: Shape) -> list[str]:
    """The network aliases the task's pause container answers to on the shape's network."""
    raw = docker(
        "inspect", "--format", f"{{{{json (index .NetworkSettings.Networks \"{shape.network}\").Aliases}}}}",
        task.pause,
    )  # fmt: skip
    return [a for a in json.loads(raw) or [] if "." in a]
