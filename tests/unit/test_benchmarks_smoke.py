"""Cheap checks that the benchmark helpers compute what they claim; `nox -s bench` runs the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.__main__ import _table  # noqa: E402
from benchmarks.stack import slope, stack_rss  # noqa: E402


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert common.percentile(values, 0) == 1.0
    assert common.percentile(values, 50) == 3.0
    assert common.percentile(values, 100) == 5.0
    assert common.percentile(values, 95) == pytest.approx(4.8)
    assert common.percentile(list(range(1, 11)), 95) == pytest.approx(9.55)
    with pytest.raises(ValueError):
        common.percentile([], 50)


def test_slope_is_least_squares() -> None:
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    assert slope([(0, 1.0), (2, 1.0), (4, 1.0)]) == 0.0
    assert slope([(3, 7.0)]) == 0.0


def test_make_location_has_the_file_count_and_loads(tmp_path: Path) -> None:
    loc = common.make_location(tmp_path / "loc", 50, file_bytes=300)
    files = [p for p in loc.rglob("*") if p.is_file()]
    assert len(files) == 50
    assert all(p.stat().st_size == 300 for p in files if p.suffix == ".sql")
    assert "dg.Definitions" in (loc / "definitions.py").read_text()


def test_request_counter_counts_requests_bytes_and_downloads() -> None:
    with common.moto_server() as endpoint:
        s3 = common.s3_client(endpoint)
        s3.create_bucket(Bucket="bench-b")
        counter = common.RequestCounter(s3)
        with counter.measure() as puts:
            s3.put_object(Bucket="bench-b", Key="dags/x/a.txt", Body=b"x" * 1000)
            s3.put_object(Bucket="bench-b", Key="dags/x/b.txt", Body=b"y" * 10)
        assert puts.requests == 2
        assert puts.by_operation == {"PutObject": 2}
        assert puts.bytes_sent == 1010
        assert puts.object_gets == []
        etag = s3.head_object(Bucket="bench-b", Key="dags/x/a.txt")["ETag"]
        with counter.measure() as gets:
            s3.get_object(Bucket="bench-b", Key="dags/x/a.txt")["Body"].read()
            with pytest.raises(s3.exceptions.ClientError):
                s3.get_object(Bucket="bench-b", Key="dags/x/a.txt", IfNoneMatch=etag)
        assert gets.requests == 2
        assert gets.by_operation == {"GetObject": 2}
        assert gets.object_gets == ["dags/x/a.txt"]  # the 304 is not a download
        assert gets.bytes_received == 1000


def test_stack_rss_sums_process_trees() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import os

        me = os.getpid()
        rss = stack_rss({"webserver": me, "daemon": child.pid, "sync-x": child.pid}, "x")
        assert rss["parts_mb"]["daemon"] > 1
        # The test process's tree includes the child.
        assert rss["parts_mb"]["webserver"] > rss["parts_mb"]["daemon"]
        assert rss["total_mb"] == pytest.approx(sum(rss["parts_mb"].values()))
        with pytest.raises(RuntimeError, match="not running"):
            stack_rss({"webserver": me}, "x")
    finally:
        child.kill()
        child.wait()


def test_table_wraps_long_figures_and_keeps_columns() -> None:
    rows = [
        common.Row("2 idle sync", "idle poll", "word " * 40, "1 request", common.PASS, "cmd"),
        common.Row("6 cost", "dev", "12.34", "-", common.INFO, "invoke cost --env dev"),
    ]
    text = _table(rows)
    lines = text.splitlines()
    assert lines[0].startswith("benchmark")
    assert all(len(line) <= len(lines[0]) + 1 for line in lines)
    assert sum("PASS" in line for line in lines) == 1
    assert "invoke cost --env dev" in text


def test_main_runs_the_cost_benchmark_and_rejects_unknown_names(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "code_locations").mkdir(parents=True)
    (root / "code_locations" / "locations.yaml").write_text("locations:\n- name: main\n  source: x\n")
    (root / "live" / "dev").mkdir(parents=True)
    (root / "live" / "dev" / "main.tf").write_text("")
    (root / "live" / "dev" / "terraform.tfvars").write_text("single_task = true\nuse_fargate_spot = true\n")
    out = tmp_path / "results.json"
    env = {"DAGOPS_ROOT": str(root), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "benchmarks"]
    ok = subprocess.run(
        [*cmd, "--only", "cost", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "Monthly cost estimate: dev" in ok.stdout
    data = json.loads(out.read_text())
    assert [r["bench"] for r in data["rows"]] == ["6 cost"]
    assert data["rows"][0]["value"] > 0
    bad = subprocess.run([*cmd, "--only", "nope"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "unknown benchmark nope" in bad.stderr
    # A benchmark that cannot run is an ERROR row and exit code 1 (no live roots here).
    empty = tmp_path / "empty"
    (empty / "live").mkdir(parents=True)
    failed = subprocess.run(
        [*cmd, "--only", "cost", "--out", str(out)],
        cwd=ROOT,
        env={**env, "DAGOPS_ROOT": str(empty)},
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1
    assert "ERROR" in failed.stdout
