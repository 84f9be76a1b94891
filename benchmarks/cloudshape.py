"""Cloud-shape edit-to-visible through the S3 event path (issue 13, item 3).

The dev root is applied to a moto container and its task definitions are started as ECS would start them,
by the cloud-shape tests' own harness (tests/containers/test_cloud_shape.py: ``applied_shapes``,
``start_shape``): one task with the webserver, the daemon and a container per code location, a real
Postgres, S3 and SQS in the emulator, S3 notifications of each location's manifest to its SQS queue
(modules/sync-events). Each change is what ``invoke dags.deploy --env dev`` does, through the same library
call (``dagops.publish.publish_location``) against the same endpoint: a copy of ``main`` with one more
asset, published to the environment's bucket; the clock runs from the start of the publish until the new
asset is in the webserver's GraphQL. The agents' 60 s poll stays on, so anything under it came by event.

Needs a Docker engine, the project image (``DAGOPS_IMAGE``, built by ``invoke image.build``), the Postgres
and moto images (``DAGOPS_POSTGRES_IMAGE``, ``DAGOPS_MOTO_IMAGE``, as for the container tests) and tofu
or terraform. Containers and networks are named ``DAGOPS_TEST_PREFIX``-... (default ``dagops-bench``).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Row, percentile, repo_root, reproduce, verdict
from benchmarks.stack import BENCH_MODULE, PROBE_S, _bench_module, _visible

CLOUD_BUDGET_P95_S = 5.0
CHANGES = 20
LOCATION = "main"
VISIBLE_TIMEOUT_S = 120.0


def _answers(*argv: str) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _harness() -> Any:
    """The cloud-shape tests' module (imported from tests/containers), after checking what it needs."""
    if not shutil.which("docker") or not _answers("docker", "info"):
        raise RuntimeError("no Docker engine answers (`docker info`); the cloud shape needs one")
    image = os.environ.get("DAGOPS_IMAGE", "").strip()
    if not image:
        raise RuntimeError("DAGOPS_IMAGE is unset: name the project image (`invoke image.build` builds it)")
    os.environ.setdefault("DAGOPS_TEST_PREFIX", "dagops-bench")
    for path in (repo_root() / "tests" / "containers", repo_root() / "tests" / "infra"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import test_cloud_shape

    missing = [
        i
        for i in (image, test_cloud_shape.POSTGRES_IMAGE, test_cloud_shape.MOTO_IMAGE)
        if not _answers("docker", "image", "inspect", i)
    ]
    if missing:
        raise RuntimeError(
            f"images not built: {', '.join(missing)} (`invoke image.build`, .ci/base-images.sh)"
        )
    if test_cloud_shape.find_binary() is None:
        raise RuntimeError("neither tofu nor terraform is on PATH: the cloud shape needs an apply")
    return test_cloud_shape


def _poll_interval(shape: Any) -> str:
    """The agents' poll interval (DAGOPS_SYNC_INTERVAL) as the task definition sets it."""
    for svc in shape.services:
        for c in svc.task_definition["containerDefinitions"]:
            env = {e["name"]: e["value"] for e in c.get("environment", [])}
            if "DAGOPS_SYNC_INTERVAL" in env:
                return str(env["DAGOPS_SYNC_INTERVAL"])
    return "default"


# "... 221 bytes, 2.50s (import check 0.09s)": the total is the download and the import check together.
SWAPPED = re.compile(
    rf"\[sync {LOCATION}\] swapped to \w+: .*, ([\d.]+)s(?: \(import check [\d.]+s\))?$", re.MULTILINE
)


def _swap_seconds(shape: Any, last: int) -> list[float]:
    """The agent's own ``swapped to ...`` durations (download + import check) of the last ``last`` swaps."""
    found: list[float] = []
    for task in shape.tasks:
        for spec in task.specs:
            found += [float(m) for m in SWAPPED.findall(task.logs(spec.name, tail=100_000))]
    return found[-last:]


def _wait_visible(url: str, asset: str, since: float) -> float:
    while time.monotonic() - since < VISIBLE_TIMEOUT_S:
        if _visible(url, asset):
            return time.monotonic() - since
        time.sleep(PROBE_S)
    raise RuntimeError(f"{asset} was not visible {VISIBLE_TIMEOUT_S:.0f} s after its publish")


def cloud_events(changes: int = CHANGES) -> list[Row]:
    """``changes`` publishes of ``main`` on the dev cloud shape, each timed to its asset in the webserver."""
    from dagops.publish import publish_location

    cs = _harness()
    image = os.environ["DAGOPS_IMAGE"].strip()
    cmd = reproduce("cloud") + f" --changes {changes}"
    visible: list[float] = []
    publish_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-cloud-") as tmp:
        base = Path(tmp)
        (base / "tfhome").mkdir()
        tofu = cs.make_tofu(cs.find_binary(), base / "tfhome")
        with cs.applied_shapes(["dev"], image, tofu, base / "cloudshape") as shapes:
            shape = shapes["dev"]
            webserver, started = cs.start_shape(shape)
            url = f"http://127.0.0.1:{webserver.published[3000]}"
            cs.wait_for("every location LOADED", lambda: cs._all_loaded(shape, url), cs.LOADED_TIMEOUT)
            loaded_s = time.monotonic() - started
            print(f"[bench]   cloud shape (dev) LOADED {loaded_s:.0f} s after its start", file=sys.stderr)
            interval = _poll_interval(shape)
            s3 = shape.client("s3")
            bucket = shape.deployment.outputs["bucket_name"]
            src = base / LOCATION
            shutil.copytree(
                repo_root() / "code_locations" / "main",
                src,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
            )
            for n in range(changes + 1):  # change 0 is the unmeasured warm-up
                time.sleep(random.uniform(0, 1.0))
                (src / "pipelines" / BENCH_MODULE).write_text(_bench_module(n))
                began = time.monotonic()
                publish_location(s3, bucket, LOCATION, src, "definitions.py")
                published = time.monotonic() - began
                seconds = _wait_visible(url, f"bench_change_{n}", began)
                print(
                    f"[bench]   cloud change {n}: visible {seconds:.2f} s after the deploy began "
                    f"(publish {published:.2f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                if n:
                    visible.append(seconds)
                    publish_s.append(published)
            swaps = _swap_seconds(shape, changes)
    p50, p95 = percentile(visible, 50), percentile(visible, 95)
    return [
        Row(
            "10 cloud shape events",
            f"deploy --env dev -> asset visible, S3 -> SQS -> agent, poll {interval} s, {changes} edits",
            f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(visible):.2f} s; of which publish "
            f"{percentile(publish_s, 50):.2f} s p50 (counted), the agent's swap (download, import check) "
            f"{percentile(swaps, 50) if swaps else float('nan'):.2f} s p50",
            f"p95 <= {CLOUD_BUDGET_P95_S:g} s",
            verdict(p95 <= CLOUD_BUDGET_P95_S),
            cmd,
            value=round(p95, 3),
            unit="s",
            details={"latencies_s": visible, "publish_s": publish_s, "swap_s": swaps, "loaded_s": loaded_s},
        )
    ]
