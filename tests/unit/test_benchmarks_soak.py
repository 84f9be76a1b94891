"""The soak benchmark's arithmetic and process accounting, and the cloud-shape benchmark's preconditions."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import cloudshape  # noqa: E402
from benchmarks.soak import judge, process_rss, table  # noqa: E402

# An "agent" whose children are a code server holding ~60 MB, a run worker holding ~60 MB and a
# standby holding ~30 MB.
AGENT = """
import subprocess, sys, time
hold = "import time; x = b'1' * (60 << 20); time.sleep(60)"  # short: the markers stay in view
server = subprocess.Popen([sys.executable, "-c", hold, "api", "grpc"])
run = subprocess.Popen([sys.executable, "-c", hold, "execute_run"])
standby = subprocess.Popen([sys.executable, "-c", hold.replace("60 << 20", "30 << 20"), "--standby"])
time.sleep(60)
"""


def _samples(values: dict[str, list[float]], every: int = 50) -> list[tuple[int, dict[str, float]]]:
    n = len(next(iter(values.values())))
    return [(i * every, {k: v[i] for k, v in values.items()}) for i in range(n)]


def test_process_rss_counts_the_code_server_apart_from_its_agent_and_leaves_runs_out() -> None:
    agent = subprocess.Popen([sys.executable, "-c", AGENT])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import os

        deadline = time.monotonic() + 30
        rss: dict[str, float] = {}
        while time.monotonic() < deadline:
            rss = process_rss({"webserver": os.getpid(), "daemon": other.pid, "sync-x": agent.pid}, ["x"])
            if rss["code server x"] > 60 and rss["standby x"] > 30:
                break
            time.sleep(0.2)
        assert set(rss) == {"webserver", "daemon", "agent x", "code server x", "standby x"}
        assert 60 < rss["code server x"] < 100, rss  # the server's 60 MB, not the run worker's or standby's
        assert 30 < rss["standby x"] < 60, rss
        assert rss["agent x"] < 40, rss
        assert rss["daemon"] < 40, rss
        with pytest.raises(RuntimeError, match="sync-y is not running"):
            process_rss({"webserver": os.getpid(), "daemon": other.pid}, ["y"])
    finally:
        for proc in (agent, other):
            proc.kill()
            proc.wait()


def test_judge_passes_a_level_process_and_fails_growth_and_size() -> None:
    samples = _samples(
        {
            # Warm-up growth early, level over the last 250 runs.
            "webserver": [150, 170, 175, 176, 176, 177, 176, 177, 177, 176, 178],
            # 3 MB every 50 runs: +8 % over the last 250.
            "code server x": [170 + 3 * i for i in range(11)],
            "daemon": [250, 255, 258, 258, 259, 259, 259, 259, 260, 260, 260],
            "agent x": [50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 300],
        }
    )
    got = judge(samples)
    web = got["webserver"]
    assert web["over_runs"] == 250
    assert web["growth"] == pytest.approx(1 / 177)
    assert web["ok_size"] and web["ok_growth"]
    code = got["code server x"]
    assert code["growth"] == pytest.approx(15 / 185)
    assert code["kb_per_run"] == pytest.approx(3 / 50 * 1024)
    assert code["ok_size"] and not code["ok_growth"]
    daemon = got["daemon"]
    assert daemon["ok_growth"] and not daemon["ok_size"]  # 260 MB > 256 MB
    agent = got["agent x"]
    assert agent["ok_size"] and not agent["capped"]  # the agent has no size budget, only growth
    assert not agent["ok_growth"]


def test_judge_on_a_short_soak_measures_over_the_window_it_is_given() -> None:
    samples = _samples({"webserver": [100.0, 200.0, 202.0]})
    got = judge(samples, window=50)
    assert got["webserver"]["over_runs"] == 50
    assert got["webserver"]["growth"] == pytest.approx(0.01)


def test_table_has_a_line_per_sample_and_a_column_per_process() -> None:
    text = table(_samples({"webserver": [170.0, 171.26], "code server main": [172.0, 180.0]}))
    lines = text.splitlines()
    assert lines[0].split() == ["runs", "webserver", "code", "server", "main"]
    assert lines[2].split() == ["0", "170.0", "172.0"]
    assert lines[3].split() == ["50", "171.3", "180.0"]


def test_cloud_benchmark_without_an_engine_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker binary on it
    with pytest.raises(RuntimeError, match=r"no Docker engine answers \(`docker info`\)"):
        cloudshape.cloud_events()


def test_cloud_benchmark_needs_the_project_image_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloudshape, "_answers", lambda *argv: True)  # an engine answers
    monkeypatch.setattr(cloudshape.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.delenv("DAGOPS_IMAGE", raising=False)
    with pytest.raises(RuntimeError, match="DAGOPS_IMAGE is unset"):
        cloudshape.cloud_events()


def test_cloud_benchmark_reads_the_agents_swap_times_of_its_location_from_the_logs() -> None:
    line = "[sync {}] swapped to {:012x}: 1 downloaded, 5 kept, 221 bytes, {}s (import check 0.09s)"
    logs = {
        "webserver": "",
        "code-main": "\n".join(line.format("main", n, f"{n}.50") for n in range(5)),
        "code-sales_ops": line.format("sales_ops", 1, "7.00"),
    }
    task = SimpleNamespace(
        specs=[SimpleNamespace(name=name) for name in logs], logs=lambda name, tail=40: logs[name]
    )
    assert cloudshape._swap_seconds(SimpleNamespace(tasks=[task]), 3) == [2.5, 3.5, 4.5]
