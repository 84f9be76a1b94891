"""The agent's bound on its code server's memory (DAGOPS_CODE_SERVER_MAX_RSS_MB, issue 13 item 5)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from synctrees import agent_env, code_server_pid

from dagops.ports import free_port
from dagops.runtime.sync.agent import Agent
from dagops.runtime.sync.codeserver import CodeServer, grpc_serving, rss_kib
from dagops.runtime.sync.syncer import Syncer

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


def _serving_pid(syncer: Syncer) -> int | None:
    return code_server_pid(syncer.status.code_server)


def test_a_code_server_over_its_limit_is_replaced_by_a_fresh_one_on_the_same_release(
    s3: Any, bucket: str, publish: Any, source: Path, tmp_path: Path
) -> None:
    release = publish(source)
    lines: list[str] = []
    syncer = Syncer(s3, bucket, "main", tmp_path / "code", log=lines.append)
    port = free_port()
    server = CodeServer("main", syncer.layout.root, "127.0.0.1", port, lines.append)
    syncer.checker = lambda tree, entry, env: server.warm_check(tree, entry, syncer.check_timeout, env)
    # A dagster code server holds well over 60 MB from the start: the limit is passed at once.
    agent = Agent(syncer, interval=60.0, code_server=server, max_rss_mb=60, memory_grace=1.0)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        first = wait_for(lambda: _serving_pid(syncer), 120, "the first code server")
        rss = rss_kib(first)
        assert rss is not None and rss > 60 * 1024
        second = wait_for(
            lambda: (p := _serving_pid(syncer)) is not None and p != first and p, 120, "its replacement"
        )
        assert any(f"(pid {first}) holds" in line and "over its limit of 60 MB: replacing it" in line
                   for line in lines), lines  # fmt: skip
        assert grpc_serving("127.0.0.1", port)
        assert syncer.status.revision == release.revision  # the same release, not a new one
        # The old server is gone (stopped, not left running beside the new one).
        wait_for(lambda: not Path(f"/proc/{first}").exists(), 30, "the old code server to exit")
        assert server.pid == second
    finally:
        agent.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert not server.alive()


def test_no_limit_by_default_and_the_limit_must_be_a_size(
    moto_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagops.runtime.sync.cli import max_rss_mb as _max_rss_mb

    monkeypatch.delenv("DAGOPS_CODE_SERVER_MAX_RSS_MB", raising=False)
    assert _max_rss_mb(None) == 0.0
    monkeypatch.setenv("DAGOPS_CODE_SERVER_MAX_RSS_MB", "300")
    assert _max_rss_mb(None) == 300.0
    assert _max_rss_mb(512.0) == 512.0  # the option wins over the variable
    env = agent_env(moto_endpoint, bucket, DAGOPS_LOCATION="main", DAGOPS_CODE_DIR=str(tmp_path / "code"))
    for extra, argv, said in [
        ({"DAGOPS_CODE_SERVER_MAX_RSS_MB": "lots"}, [], "DAGOPS_CODE_SERVER_MAX_RSS_MB='lots'"),
        ({"DAGOPS_CODE_SERVER_MAX_RSS_MB": "nan"}, [], "DAGOPS_CODE_SERVER_MAX_RSS_MB='nan'"),
        ({}, ["--max-rss-mb", "-5"], "--max-rss-mb='-5.0'"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "dagops.runtime.sync", "run", *argv],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip() == f"error: {said} is not a number of megabytes (0 for no limit).", proc
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "code").exists() or not any((tmp_path / "code").rglob("current"))
