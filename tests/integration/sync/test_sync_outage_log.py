"""The agent's log during an S3 outage: a line when the retry delay changes, one on recovery, no spam.

A real Syncer against an endpoint where nothing listens (S3 unreachable), then a moto server started on
that port (S3 back); the agent's own ``poll`` (what its loop calls) is driven directly, no sleeping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from moto_s3 import make_client

from dagops.ports import free_port
from dagops.runtime.sync.agent import Agent
from dagops.runtime.sync.syncer import SWAPPED, UNREACHABLE, Syncer

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


def test_outage_logs_each_new_delay_once_and_the_recovery(
    bucket: str, publish: Any, source: Path, tmp_path: Path
) -> None:
    published = publish(source)
    port = free_port()
    lines: list[str] = []
    syncer = Syncer(
        make_client(f"http://127.0.0.1:{port}"), bucket, "main", tmp_path / "code", log=lines.append
    )
    agent = Agent(syncer, interval=4.0)
    syncer.prepare()
    for _ in range(6):
        assert agent.poll().outcome == UNREACHABLE
    outage = [line for line in lines if "S3 unreachable" in line]
    # Delays 1, 2, 4, 4, 4, 4 s (capped at the interval): three lines for six failed polls.
    assert [line.rsplit("next try in ", 1)[1] for line in outage] == ["1 s", "2 s", "4 s"], lines
    assert all(line.startswith("error: S3 unreachable (") and ");" in line for line in outage), outage
    assert "reachable again" not in "\n".join(lines)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        result = agent.poll()
        assert (result.outcome, result.revision) == (SWAPPED, published.revision)
        agent.poll()  # unchanged: nothing more about S3
    finally:
        server.stop()
    after = lines[lines.index(outage[-1]) + 1 :]
    assert [line for line in after if "S3" in line] == ["S3 reachable again"], lines
    assert agent.next_delay() == 4.0
