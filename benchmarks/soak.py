"""Soak: at least 500 runs through the local stack, RSS per process every 50 runs, judged at the end.

The embedded local stack (``benchmarks.stack._stack``) runs the first job of the first location again
and again through GraphQL, ``in_flight`` at a time. Every ``every`` finished runs it records the RSS of
each long-lived process: the webserver, the daemon, and per code location its sync agent and the
agent's code server (``dagster api grpc``). Run workers are the runs' memory and are left out
(``benchmarks.stack.RUN_WORKER_MARKERS``). Budgets (issue 13, item 5): webserver, daemon and each code
server at most 256 MB after the last run, and growth under 5 % over the last 250 runs.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from benchmarks.common import INFO, Row, reproduce, verdict
from benchmarks.stack import (
    DONE,
    RUN_WORKER_MARKERS,
    _children,
    _cmd,
    _job_name,
    _launch,
    _rss_mb,
    _stack,
    _statuses,
    _tree,
    slope,
)

SOAK_RUNS = 500
SOAK_EVERY = 50
SOAK_RSS_BUDGET_MB = 256.0
SOAK_GROWTH_BUDGET = 0.05
SOAK_GROWTH_WINDOW = 250
REFUSED_LIMIT = 60  # launch attempts the webserver may refuse in all before the soak gives up


def process_rss(components: dict[str, int], locations: list[str]) -> dict[str, float]:
    """RSS (MB) per long-lived process: webserver, daemon, and per location ``agent <loc>``,
    ``code server <loc>`` (the agent's ``dagster api grpc`` child) and ``standby <loc>`` (the process
    waiting, dagster imported, for the next change: 0 where the agent keeps none). Run workers are not
    counted.
    """
    kids = _children()
    out: dict[str, float] = {}
    for name in ("webserver", "daemon"):
        pid = components.get(name)
        if not pid:
            raise RuntimeError(f"component {name} is not running")
        # The process itself and any helper child that is not a run (e.g. multiprocessing's tracker).
        out[name] = sum(
            _rss_mb(p) for p in _tree(pid, kids) if not any(m in _cmd(p) for m in RUN_WORKER_MARKERS)
        )
    for loc in locations:
        pid = components.get(f"sync-{loc}")
        if not pid:
            raise RuntimeError(f"component sync-{loc} is not running")
        out[f"agent {loc}"] = _rss_mb(pid)
        server = standby = 0.0
        for p in _tree(pid, kids):
            cmd = _cmd(p)
            if p == pid or any(m in cmd for m in RUN_WORKER_MARKERS):
                continue
            if "--standby" in cmd.split():
                standby += _rss_mb(p)
            else:
                server += _rss_mb(p)
        out[f"code server {loc}"] = server
        out[f"standby {loc}"] = standby
    return out


def table(samples: list[tuple[int, dict[str, float]]]) -> str:
    """The RSS table: one line per sample (runs finished), one column per process, in MB."""
    names = list(samples[0][1])
    headers = ["runs", *names]
    widths = [max(len(h), 6) for h in headers]
    lines = [
        "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for runs, rss in samples:
        cells = [str(runs), *(f"{rss.get(n, 0.0):.1f}" for n in names)]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def judge(
    samples: list[tuple[int, dict[str, float]]],
    window: int = SOAK_GROWTH_WINDOW,
    budget_mb: float = SOAK_RSS_BUDGET_MB,
    growth_budget: float = SOAK_GROWTH_BUDGET,
) -> dict[str, dict[str, Any]]:
    """Per process: RSS at the last sample, growth over the last ``window`` runs and the slope there.

    Growth compares the last sample with the sample nearest to ``last runs - window`` (the first sample
    when fewer runs were made, and the row says over how many runs it was measured). Agents are judged on
    growth only; webserver, daemon and code servers on both budgets.
    """
    last_runs, last = samples[-1]
    base_runs, base = min(samples, key=lambda s: abs(s[0] - (last_runs - window)))
    out: dict[str, dict[str, Any]] = {}
    for name, end in last.items():
        start = base[name]
        growth = (end - start) / start if start else 0.0
        late = [(float(r), rss[name]) for r, rss in samples if r >= base_runs]
        per_run_kb = slope(late) * 1024
        capped = not name.startswith("agent ")
        out[name] = {
            "end_mb": end,
            "growth": growth,
            "over_runs": last_runs - base_runs,
            "kb_per_run": per_run_kb,
            "ok_size": end <= budget_mb or not capped,
            "ok_growth": growth < growth_budget,
            "capped": capped,
        }
    return out


def soak(
    runs: int = SOAK_RUNS,
    every: int = SOAK_EVERY,
    in_flight: int = 4,
    seconds: float | None = None,
    code_server_limit_mb: float = 0.0,
) -> tuple[list[Row], str]:
    """Run ``runs`` runs, sample RSS per process every ``every`` runs; rows and the printed RSS table.

    With ``seconds``, no run is launched after that long: the rows then say how many runs were made.
    ``code_server_limit_mb`` sets the agents' DAGOPS_CODE_SERVER_MAX_RSS_MB (0: none, the default): the
    rows then count the replacements, and every run must still succeed.
    Every sample is also written to .dagops/bench/soak[-limit]-samples.json as it is taken (a long soak
    that is stopped keeps what it measured).
    """
    import json

    from dagops import registry
    from dagops.errors import DagopsError
    from dagops.operator.devstack.state import read_state
    from dagops.paths import state_dir

    label = "soak-limit" if code_server_limit_mb else "soak"
    progress = state_dir() / "bench" / f"{label}-samples.json"
    progress.parent.mkdir(parents=True, exist_ok=True)

    locations = [loc.name for loc in registry.load()]
    first = locations[0]
    cmd = reproduce("soak") + f" --runs {runs}"
    env = {}
    if code_server_limit_mb:
        cmd += f" --soak-code-server-mb {code_server_limit_mb:g}"
        env["DAGOPS_CODE_SERVER_MAX_RSS_MB"] = f"{code_server_limit_mb:g}"
    with _stack(2.0, label, env=env) as (config, _):
        time.sleep(10)  # let the start-up settle before the first sample

        def sample(reads: int = 5) -> dict[str, float]:
            """Per process, the median of ``reads`` readings 0.5 s apart: a request the code server is
            answering at that instant (a schedule tick, a reload) lifts one reading, not the sample."""
            got = []
            for n in range(reads):
                got.append(process_rss(read_state(config)["components"], locations))
                if n + 1 < reads:
                    time.sleep(0.5)
            return {name: statistics.median(r[name] for r in got) for name in got[0]}

        samples: list[tuple[int, dict[str, float]]] = [(0, sample())]
        repo, job = _job_name(config.ui_url, first)
        outcomes: dict[str, int] = {}
        pending: list[str] = []
        refused: list[str] = []
        launched = 0
        began = time.monotonic()
        next_sample = every

        def launching() -> bool:
            return launched < runs and (seconds is None or time.monotonic() - began < seconds)

        while launching() or pending:
            while len(pending) < in_flight and launching():
                try:
                    pending.append(_launch(config.ui_url, first, repo, job))
                except DagopsError as exc:
                    # As a person would click Launch again: the location is briefly away while its code
                    # server is replaced. Counted and reported; a run that was accepted is never retried.
                    refused.append(str(exc))
                    if len(refused) > REFUSED_LIMIT:
                        raise
                    time.sleep(1.0)
                    continue
                launched += 1
            time.sleep(0.5)
            for run_id, status in _statuses(config.ui_url, pending).items():
                if status in DONE:
                    pending.remove(run_id)
                    outcomes[status] = outcomes.get(status, 0) + 1
            done = sum(outcomes.values())
            if done >= next_sample or (not launching() and not pending and samples[-1][0] != done):
                samples.append((done, sample()))
                progress.write_text(json.dumps({"job": job, "outcomes": outcomes, "samples": samples}))
                print(
                    f"[bench]   soak: {done} runs in {time.monotonic() - began:.0f} s, "
                    + ", ".join(f"{k} {v:.0f} MB" for k, v in samples[-1][1].items()),
                    file=sys.stderr,
                    flush=True,
                )
                while next_sample <= done:
                    next_sample += every
        elapsed = time.monotonic() - began
        replaced = {
            loc: (config.logs_dir / f"sync-{loc}.log").read_text(errors="replace").count("replacing it")
            for loc in locations
        }
    done = sum(outcomes.values())
    ok_runs = outcomes.get("SUCCESS", 0)
    verdicts = judge(samples, window=min(SOAK_GROWTH_WINDOW, max(done // 2, every)))
    text = f"Soak RSS per process (MB) every {every} runs of {job}, {in_flight} in flight:\n" + table(samples)
    rows = [
        Row(
            "9 soak",
            f"{done} runs of {job} in {elapsed:.0f} s",
            f"{ok_runs} succeeded, outcomes {outcomes}; launches refused and tried again: {len(refused)}"
            + (f" (last: {refused[-1]})" if refused else ""),
            f"{runs} runs, every one SUCCESS",
            verdict(ok_runs == done == runs),  # fewer runs than asked (a time budget) is a FAIL
            cmd,
            value=float(ok_runs),
            unit="runs",
            details={"samples": samples, "outcomes": outcomes, "seconds": elapsed, "replaced": replaced},
        )
    ]
    if code_server_limit_mb:
        rows.append(
            Row(
                "9 soak",
                f"code servers replaced past {code_server_limit_mb:g} MB (DAGOPS_CODE_SERVER_MAX_RSS_MB)",
                ", ".join(f"{loc} {n} times" for loc, n in replaced.items()),
                "-",
                INFO,
                cmd,
                value=float(sum(replaced.values())),
                unit="replacements",
            )
        )
    for name, v in verdicts.items():
        size = f"{v['end_mb']:.0f} MB after {done} runs, " if v["capped"] else f"{v['end_mb']:.0f} MB, "
        budget = (
            f"<= {SOAK_RSS_BUDGET_MB:g} MB, growth < {SOAK_GROWTH_BUDGET:.0%}"
            if v["capped"]
            else f"growth < {SOAK_GROWTH_BUDGET:.0%}"
        )
        rows.append(
            Row(
                "9 soak",
                f"RSS {name}",
                f"{size}{v['growth']:+.1%} over the last {v['over_runs']} runs "
                f"({v['kb_per_run']:+.0f} KB per run there)",
                budget,
                verdict(v["ok_size"] and v["ok_growth"]),
                cmd,
                value=round(v["end_mb"], 1),
                unit="MB",
                details=v,
            )
        )
    if done < SOAK_GROWTH_WINDOW * 2:
        rows.append(
            Row(
                "9 soak",
                "note",
                f"{done} runs: fewer than the {SOAK_RUNS} the budget is set for; growth measured over "
                f"the later half only",
                "-",
                INFO,
                cmd,
            )
        )
    return rows, text
