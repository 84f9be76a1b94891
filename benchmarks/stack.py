"""Benchmarks on the local stack: change-to-visible latency (1), stack memory (3), start-up (4).

Each starts the embedded local stack of this repository (its registered code locations, ``main`` first)
with a temporary state directory and free ports, through the same library ``invoke dev`` uses
(``dagops.operator.devstack``), and stops it afterwards. Nothing in the repository is changed: the latency
benchmark publishes a copy of ``main`` with one extra module to the stack's own S3.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import (
    INFO,
    Row,
    aws_client,
    free_port,
    percentile,
    repo_root,
    reproduce,
    s3_client,
    verdict,
)
from dagops.ports import free_ports

LATENCY_INTERVAL_S = 1.0
LATENCY_BUDGET_P95_S = 5.0
DEFAULT_INTERVAL_S = 60.0
MEMORY_BUDGET_MB = 450.0
MEMORY_GROWTH_BUDGET = 0.10
PROBE_S = 0.1
UI_TIMEOUT_S = 300.0
BENCH_MODULE = "bench_change.py"

ASSET_QUERY = """
query Asset($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename } }
"""
LAUNCH = """
mutation Launch($p: ExecutionParams!) {
  launchRun(executionParams: $p) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""
RUN_STATUSES = """
query Runs($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) { __typename ... on Runs { results { runId status } } }
}
"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


# ------------------------------------------------------------------------------------------------ helpers
def _graphql(url: str, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    from dagops import webserver

    return webserver.query(url, text, variables)


def _ui_ready(url: str) -> bool:
    """The UI answers and every code location is loaded without error."""
    from dagops import webserver
    from dagops.errors import DagopsError

    if webserver.server_info(url, timeout=2) is None:
        return False
    try:
        states = webserver.locations(url)
    except DagopsError:
        return False
    return bool(states) and all(s["loadStatus"] == "LOADED" and not s["error"] for s in states.values())


@contextlib.contextmanager
def _stack(
    sync_interval: float, label: str, s3_port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The embedded local stack (detached) with a temporary state dir and free ports; stopped after.

    ``env`` is added to the environment the stack (and so every component) starts with.
    """
    from dagops.operator.devstack import control
    from dagops.operator.devstack.config import DevConfig

    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        os.chmod(tmp, 0o711)  # noqa: S103 (Postgres runs as user postgres and must reach its data dir)
        config = DevConfig.resolve(
            {},
            environ={},
            mode="embedded",
            ui_port=free_port(),
            s3_port=s3_port or free_port(),
            postgres_port=free_port(),
            code_server_base_port=free_ports(16)[0],
            sync_interval=sync_interval,
            state_dir=tmp,
        )
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            state = control.start_detached(config, console=sys.stderr)
        except BaseException:
            _keep_logs(config.logs_dir, label)
            raise
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        try:
            deadline = time.monotonic() + UI_TIMEOUT_S
            while not _ui_ready(config.ui_url):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the stack's code locations did not load; see {config.logs_dir}")
                time.sleep(0.5)
            yield config, state
        finally:
            control.stop(config, console=sys.stderr)
            _keep_logs(config.logs_dir, label)


def _keep_logs(logs: Path, label: str) -> None:
    """Copy a stack's logs out of its temporary state dir, to .dagops/bench/logs/<label>/."""
    from dagops.paths import state_dir

    target = state_dir() / "bench" / "logs" / label
    with contextlib.suppress(OSError):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(logs, target)
        print(f"[bench] the stack's logs are kept in {target}", file=sys.stderr)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


# Run workers come and go (the code server starts one per run with multiprocessing's spawn, and the
# run's executor one per step); they are the runs' memory, not the stack's, and are counted apart.
RUN_WORKER_MARKERS = ("spawn_main", "execute_run", "execute_step")


def stack_rss(components: dict[str, int], location: str) -> dict[str, Any]:
    """RSS (MB) of webserver, daemon and the location's sync agent with its code server (process trees).

    Run workers found in those trees are left out of ``total_mb`` and reported as ``runs_mb``.
    """
    kids = _children()
    parts: dict[str, float] = {}
    processes: dict[str, list[str]] = {}
    runs_mb = 0.0
    for name in ("webserver", "daemon", f"sync-{location}"):
        pid = components.get(name)
        if not pid:
            raise RuntimeError(f"component {name} is not running")
        parts[name] = 0.0
        processes[name] = []
        for p in _tree(pid, kids):
            rss, cmd = _rss_mb(p), _cmd(p)
            if any(marker in cmd for marker in RUN_WORKER_MARKERS):
                runs_mb += rss
                continue
            parts[name] += rss
            processes[name].append(f"{p}: {rss:.0f} MB {cmd}")
    return {"total_mb": sum(parts.values()), "parts_mb": parts, "processes": processes, "runs_mb": runs_mb}


# ------------------------------------------------------------------------------------ 1. latency
def _bench_module(n: int) -> str:
    return (
        '"""Benchmark change: one asset whose name changes with every publish."""\n\n'
        "import dagster as dg\n\n\n"
        f'@dg.asset(group_name="bench")\n'
        f"def bench_change_{n}() -> int:\n"
        f"    return {n}\n\n\n"
        f"defs = dg.Definitions(assets=[bench_change_{n}])\n"
    )


def _visible(url: str, asset: str) -> bool:
    data = _graphql(url, ASSET_QUERY, {"key": {"path": [asset]}})
    return data["assetNodeOrError"]["__typename"] == "AssetNode"


def _change_and_wait(
    s3: Any, config: Any, loc: Any, src: Path, n: int, wake: int | None, timeout: float = 120.0
) -> tuple[float, float, float]:
    """Publish change ``n``, wait until its asset is visible.

    Returns seconds from the end of the publish to the swap on disk and to the asset in GraphQL, and
    the publish's own time.
    """
    from dagops.publish import publish_location
    from dagops.runtime.sync.layout import LocationDir

    layout = LocationDir(config.code_dir, loc.name)
    (src / "pipelines" / BENCH_MODULE).write_text(_bench_module(n))
    started = time.monotonic()
    result = publish_location(s3, config.bucket, loc.name, src, loc.entry)
    published = time.monotonic()
    if wake is not None:
        os.kill(wake, signal.SIGUSR1)  # the agent's "poll now": isolates the work after a poll
    swapped = None
    while time.monotonic() - published < timeout:
        if swapped is None and layout.current_revision() == result.revision:
            swapped = time.monotonic() - published
        if _visible(config.ui_url, f"bench_change_{n}"):
            visible = time.monotonic() - published
            return (visible if swapped is None else swapped), visible, published - started
        time.sleep(PROBE_S)
    raise RuntimeError(f"change {n} was not visible after {timeout:.0f} s")


def _series(
    s3: Any, config: Any, loc: Any, src: Path, numbers: range, jitter: float, wake: int | None = None
) -> tuple[list[float], list[float], list[float]]:
    """Changes ``numbers``, each after a random pause of up to ``jitter`` s: (visible, swap, publish) s."""
    visible, swaps, publish_s = [], [], []
    for n in numbers:
        # Land each change at a random point of the agent's poll cycle.
        time.sleep(random.uniform(0, jitter))
        swap, seconds, pub = _change_and_wait(s3, config, loc, src, n, wake)
        visible.append(seconds)
        swaps.append(swap)
        publish_s.append(pub)
        print(
            f"[bench]   change {n}: swapped {swap:.2f} s, visible {seconds:.2f} s after publish",
            file=sys.stderr,
            flush=True,
        )
    return visible, swaps, publish_s


def _copy_location(loc: Any, tmp: str) -> Path:
    src = Path(tmp) / loc.name
    shutil.copytree(loc.path(), src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    return src


def _event_series(loc: Any, changes: int) -> tuple[list[float], list[float], int]:
    """The event path: S3 notifications to an SQS queue that the agent long-polls, the poll at 60 s."""
    s3_port = free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    queue = f"dagops-bench-{loc.name}"
    queue_url = f"{endpoint}/123456789012/{queue}"
    env = {"DAGOPS_SYNC_QUEUE_URL": queue_url}
    with (
        _stack(DEFAULT_INTERVAL_S, "latency-events", s3_port=s3_port, env=env) as (config, _),
        tempfile.TemporaryDirectory() as tmp,
    ):
        src = _copy_location(loc, tmp)
        s3 = s3_client(config.s3_endpoint)
        sqs = aws_client("sqs", config.s3_endpoint)
        made = sqs.create_queue(QueueName=queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=made, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rules = [
            {"Name": "prefix", "Value": f"dags/{loc.name}/"},
            {"Name": "suffix", "Value": "_manifest.json"},
        ]
        s3.put_bucket_notification_configuration(
            Bucket=config.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": rules}},
                    }
                ]
            },
        )
        # The agent's listener retried with backoff while the queue did not exist yet: wait until it is
        # back (or never failed), with one unmeasured change as the warm-up.
        log = config.logs_dir / f"sync-{loc.name}.log"
        _change_and_wait(s3, config, loc, src, 0, None, timeout=DEFAULT_INTERVAL_S * 2 + 30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "event queue unavailable" not in text or "event queue back" in text:
                break
            time.sleep(1)
        visible, swaps, _ = _series(s3, config, loc, src, range(101, 101 + changes), 1.0)
        text = log.read_text(errors="replace") if log.exists() else ""
        polls = text.count("swapped to")
    return visible, swaps, polls


def latency(changes: int = 10) -> list[Row]:
    """Benchmark 1: from publishing a changed location to its new asset in the webserver's GraphQL."""
    from dagops import registry

    changes = max(changes, 10)
    loc = registry.load()[0]
    cmd = reproduce("latency")
    with _stack(LATENCY_INTERVAL_S, "latency") as (config, state), tempfile.TemporaryDirectory() as tmp:
        src = _copy_location(loc, tmp)
        s3 = s3_client(config.s3_endpoint)
        agent = state["components"][f"sync-{loc.name}"]
        polled, swaps, publish_s = _series(s3, config, loc, src, range(1, changes + 1), LATENCY_INTERVAL_S)
        # The same with the agent woken at once: what a change costs after the poll that sees it.
        woken, _, _ = _series(
            s3, config, loc, src, range(changes + 1, changes + 6), LATENCY_INTERVAL_S, agent
        )
    events, event_swaps, _ = _event_series(loc, changes)
    p50, p95 = percentile(polled, 50), percentile(polled, 95)
    w50, w95 = percentile(woken, 50), percentile(woken, 95)
    e50, e95 = percentile(events, 50), percentile(events, 95)
    after_swap = [v - w for v, w in zip(polled, swaps, strict=True)]
    rows = [
        Row(
            "1 change-to-visible",
            f"poll every {LATENCY_INTERVAL_S:g} s, {changes} changes",
            f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(polled):.2f} s; of which publish -> swap on disk "
            f"(poll wait, download, import check) p50 {percentile(swaps, 50):.2f} s, swap -> visible "
            f"(code-server restart, reload) p50 {percentile(after_swap, 50):.2f} s"
            f"; publish itself {percentile(publish_s, 50):.2f} s p50, not counted",
            f"p95 < {LATENCY_BUDGET_P95_S:g} s",
            verdict(p95 < LATENCY_BUDGET_P95_S),
            cmd,
            value=round(p95, 3),
            unit="s",
            details={"latencies_s": polled, "swap_s": swaps, "publish_s": publish_s, "location": loc.name},
        ),
        Row(
            "1 change-to-visible",
            "after the poll that sees it (agent woken by SIGUSR1, 5 changes)",
            f"p50 {w50:.2f} s, p95 {w95:.2f} s (download, import check, code-server restart, reload)",
            "-",
            INFO,
            cmd,
            value=round(w50, 3),
            unit="s",
            details={"latencies_s": woken},
        ),
        Row(
            "1 change-to-visible",
            f"event path: S3 -> SQS -> agent, poll every {DEFAULT_INTERVAL_S:g} s, {changes} changes",
            f"p50 {e50:.2f} s, p95 {e95:.2f} s, max {max(events):.2f} s; publish -> swap p50 "
            f"{percentile(event_swaps, 50):.2f} s",
            f"p95 < {LATENCY_BUDGET_P95_S:g} s",
            verdict(e95 < LATENCY_BUDGET_P95_S),
            cmd,
            value=round(e95, 3),
            unit="s",
            details={"latencies_s": events, "swap_s": event_swaps},
        ),
        Row(
            "1 change-to-visible",
            f"polling only at the default {DEFAULT_INTERVAL_S:g} s interval (computed, not measured)",
            f"expected p50 ~{DEFAULT_INTERVAL_S / 2 + w50:.0f} s, "
            f"p95 ~{0.95 * DEFAULT_INTERVAL_S + w95:.0f} s, "
            f"worst ~{DEFAULT_INTERVAL_S + w95:.0f} s (uniform wait for the next poll + the woken figures)",
            "-",
            INFO,
            cmd,
            value=round(DEFAULT_INTERVAL_S / 2 + w50, 1),
            unit="s",
        ),
    ]
    return rows


# ------------------------------------------------------------------------------------- 3. memory
def _job_name(url: str, location: str) -> tuple[str, str]:
    """(repository name, job name) of the location's first non-asset-base job."""
    data = _graphql(
        url,
        """query { repositoriesOrError { ... on RepositoryConnection { nodes {
             name location { name } jobs { name } } } } }""",
    )
    for repo in data["repositoriesOrError"]["nodes"]:
        if repo["location"]["name"] != location:
            continue
        jobs = [j["name"] for j in repo["jobs"] if not j["name"].startswith("__")]
        if jobs:
            return repo["name"], jobs[0]
    raise RuntimeError(f"code location {location} has no job to run")


def _launch(url: str, location: str, repo: str, job: str) -> str:
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": repo, "jobName": job},
        "runConfigData": {},
    }
    result = _graphql(url, LAUNCH, {"p": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun: {result['__typename']}: {result.get('message', '')}")
    return str(result["run"]["runId"])


def _statuses(url: str, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    data = _graphql(url, RUN_STATUSES, {"ids": ids})["runsOrError"]
    return {r["runId"]: r["status"] for r in data.get("results", [])}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def memory(
    runs: int = 200, time_budget_s: float = 300.0, in_flight: int = 4, settle_s: float = 15.0
) -> list[Row]:
    """Benchmark 3: summed RSS of webserver + daemon + one code location, after start and after runs.

    Runs are launched through GraphQL, ``in_flight`` at a time (the stack's run queue limit), until
    ``runs`` have finished or ``time_budget_s`` has passed. RSS is sampled after every finished run; when
    fewer than ``runs`` fit, the growth is extrapolated from the slope of the later half of the samples
    (after the daemon's one-time warm-up), and the row says so.
    """
    from dagops import registry
    from dagops.operator.devstack.state import read_state

    loc = registry.load()[0]
    cmd = reproduce("memory")
    with _stack(2.0, "memory") as (config, _):
        time.sleep(settle_s)
        start = stack_rss(read_state(config)["components"], loc.name)
        repo, job = _job_name(config.ui_url, loc.name)
        outcomes: dict[str, int] = {}
        pending: list[str] = []
        samples: list[tuple[float, float]] = [(0, start["total_mb"])]
        launched = 0
        began = time.monotonic()
        while (launched < runs and time.monotonic() - began < time_budget_s) or pending:
            while len(pending) < in_flight and launched < runs and time.monotonic() - began < time_budget_s:
                pending.append(_launch(config.ui_url, loc.name, repo, job))
                launched += 1
            time.sleep(0.5)
            finished_now = 0
            for run_id, status in _statuses(config.ui_url, pending).items():
                if status in DONE:
                    pending.remove(run_id)
                    outcomes[status] = outcomes.get(status, 0) + 1
                    finished_now += 1
            if finished_now:
                total = stack_rss(read_state(config)["components"], loc.name)["total_mb"]
                samples.append((sum(outcomes.values()), total))
            if time.monotonic() - began > time_budget_s + 300:
                raise RuntimeError(f"{len(pending)} runs did not finish")
        elapsed = time.monotonic() - began
        time.sleep(5)
        end = stack_rss(read_state(config)["components"], loc.name)
    done = sum(outcomes.values())
    growth = (end["total_mb"] - start["total_mb"]) / start["total_mb"]
    extrapolated = done < runs
    late = [pt for pt in samples if pt[0] >= done / 2] or samples
    per_run_mb = slope(late)
    # A falling slope is noise, not memory given back over 200 runs: never project below the end.
    projected = end["total_mb"] + max(per_run_mb, 0.0) * (runs - done) if extrapolated else end["total_mb"]
    growth_all = (projected - start["total_mb"]) / start["total_mb"]
    parts = ", ".join(f"{k} {v:.0f}" for k, v in start["parts_mb"].items())
    end_parts = ", ".join(f"{k} {v:.0f}" for k, v in end["parts_mb"].items())
    ok_runs = outcomes.get("SUCCESS", 0)
    how = (
        f"{done} runs measured, the rest extrapolated at the later half's slope, "
        f"{per_run_mb * 1024:+.0f} KB per run (a negative slope counted as 0)"
        if extrapolated
        else f"measured; later half's slope {per_run_mb * 1024:+.0f} KB per run"
    )
    return [
        Row(
            "3 stack memory",
            f"RSS {settle_s:g} s after start (webserver + daemon + code server + sync agent)",
            f"{start['total_mb']:.0f} MB ({parts})",
            f"< {MEMORY_BUDGET_MB:g} MB",
            verdict(start["total_mb"] < MEMORY_BUDGET_MB),
            cmd,
            value=round(start["total_mb"], 1),
            unit="MB",
            details=start,
        ),
        Row(
            "3 stack memory",
            f"RSS after {done} runs of {job} ({ok_runs} succeeded, {elapsed:.0f} s)",
            f"{end['total_mb']:.0f} MB ({end_parts}), {growth:+.1%} since start",
            f"< {MEMORY_BUDGET_MB:g} MB",
            verdict(end["total_mb"] < MEMORY_BUDGET_MB),
            cmd,
            value=round(end["total_mb"], 1),
            unit="MB",
            details={**end, "outcomes": outcomes, "seconds": elapsed, "samples": samples},
        ),
        Row(
            "3 stack memory",
            f"growth over {runs} runs",
            f"{growth_all:+.1%} to ~{projected:.0f} MB ({how})",
            f"< {MEMORY_GROWTH_BUDGET:.0%}",
            verdict(growth_all < MEMORY_GROWTH_BUDGET and ok_runs == done),
            cmd,
            value=round(growth_all, 4),
            unit="fraction",
        ),
    ]


# ------------------------------------------------------------------------------------ 4. start-up
def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> tuple[float, float]:
    """Seconds until the UI answered and until every location loaded, from the process's start."""
    from dagops import webserver

    began = time.monotonic()
    answered = None
    while time.monotonic() - began < UI_TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before its UI answered")
        if answered is None and webserver.server_info(url, timeout=2) is not None:
            answered = time.monotonic() - began
        if answered is not None and _ui_ready(url):
            return answered, time.monotonic() - began
        time.sleep(PROBE_S)
    raise RuntimeError(f"{what} did not become ready within {UI_TIMEOUT_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes], sig: int, group: bool) -> None:
    """Ctrl-C (SIGINT to the group) or `invoke stop` (SIGTERM to the supervisor); SIGKILL after 60 s."""
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _invoke_dev(state: Path, log: Path) -> tuple[float, float]:
    ports = {name: free_port() for name in ("UI_PORT", "S3_PORT", "POSTGRES_PORT")}
    ports["CODE_SERVER_BASE_PORT"] = free_ports(16)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGOPS_DEV_")}
    env.update({f"DAGOPS_DEV_{k}": str(v) for k, v in ports.items()})
    env.update({"DAGOPS_DEV_MODE": "embedded", "DAGOPS_DEV_STATE_DIR": str(state)})
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "dev"],
            cwd=repo_root(),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return _wait_ready(f"http://127.0.0.1:{ports['UI_PORT']}", proc, "invoke dev")
    finally:
        _stop(proc, signal.SIGTERM, group=False)


def _dagster_dev(home: Path, log: Path) -> tuple[float, float]:
    from dagops import registry

    port = free_port()
    args = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]
    for loc in registry.load():
        args += ["-f", str(loc.path() / loc.entry)]
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        return _wait_ready(f"http://127.0.0.1:{port}", proc, "dagster dev")
    finally:
        _stop(proc, signal.SIGINT, group=True)


def startup() -> list[Row]:
    """Benchmark 4: `invoke dev` (embedded, cold then warm) to a responsive UI, beside `dagster dev`."""
    cmd = reproduce("startup")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        os.chmod(tmp, 0o711)  # noqa: S103 (Postgres runs as user postgres and must reach its data dir)
        state, logs = Path(tmp) / "state", Path(tmp) / "logs"
        logs.mkdir()
        cold = _invoke_dev(state, logs / "invoke-dev.log")
        warm = _invoke_dev(state, logs / "invoke-dev.log")
        plain = _dagster_dev(Path(tmp) / "dagster_home", logs / "dagster-dev.log")
    rows = [
        Row(
            "4 start-up",
            "invoke dev, first start (initdb, fresh state) -> UI with locations loaded",
            f"{cold[1]:.1f} s (UI answered at {cold[0]:.1f} s)",
            "-",
            INFO,
            cmd,
            value=round(cold[1], 2),
            unit="s",
        ),
        Row(
            "4 start-up",
            "invoke dev, next start (state kept) -> UI with locations loaded",
            f"{warm[1]:.1f} s (UI answered at {warm[0]:.1f} s)",
            "-",
            INFO,
            cmd,
            value=round(warm[1], 2),
            unit="s",
        ),
        Row(
            "4 start-up",
            "dagster dev, same code, same run (SQLite, no S3 sync)",
            f"{plain[1]:.1f} s (UI answered at {plain[0]:.1f} s)",
            "-",
            INFO,
            cmd,
            value=round(plain[1], 2),
            unit="s",
        ),
        Row(
            "4 start-up",
            "ratio invoke dev / dagster dev",
            f"{warm[1] / plain[1]:.2f}x next start, {cold[1] / plain[1]:.2f}x first start",
            "-",
            INFO,
            cmd,
            value=round(warm[1] / plain[1], 3),
            unit="ratio",
        ),
    ]
    return rows
