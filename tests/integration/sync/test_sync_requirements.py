"""Per-location Python requirements in the sync agent: installed before the import check, on every
process that imports the served tree. Offline: the requirements name wheels built here (UV_OFFLINE=1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepos import wheel
from polling import wait_for
from synctrees import agent_env, agent_process, serving_pid, write_tree

from dagops.ports import free_port
from dagops.runtime.sync.status import read_status
from dagops.runtime.sync.syncer import REJECTED, SWAPPED, UNCHANGED, Syncer

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket

USES_MINIDEP = {
    "definitions.py": """
        import dagster as dg
        from minidep import VALUE


        @dg.asset
        def answer() -> int:
            return VALUE + 1


        defs = dg.Definitions(assets=[answer])
    """,
    "requirements.txt": "./wheels/minidep-1.0-py3-none-any.whl\n",
}


@pytest.fixture
def req_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UV_OFFLINE", "1")  # the installs below never reach an index
    root = write_tree(tmp_path / "reqsrc", USES_MINIDEP)
    (root / "wheels").mkdir()
    (root / "wheels" / "minidep-1.0-py3-none-any.whl").write_bytes(wheel("minidep", "1.0", "VALUE = 41\n"))
    return root


def test_requirements_are_installed_for_the_import_check_and_a_bad_one_keeps_the_last_good(
    s3: Any, bucket: str, publish: Any, req_source: Path, tmp_path: Path
):
    code_dir = tmp_path / "code"
    lines: list[str] = []
    syncer = Syncer(s3, bucket, "main", code_dir, log=lines.append)
    syncer.prepare()
    good = publish(req_source)
    result = syncer.poll()
    assert (result.outcome, result.message) == (SWAPPED, "")
    installed = list((code_dir / ".requirements").glob("*/site/minidep/__init__.py"))
    assert len(installed) == 1
    site = installed[0].parent.parent
    assert any("installing the requirements of requirements.txt" in line for line in lines)
    # What a code server on `current` gets: the same cache directory, no second install.
    lines.clear()
    env = syncer.serving_env()
    # The project's folder first (what installing it would do), then its requirements.
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(syncer.layout.current), str(site)]
    assert not any("installing" in line for line in lines)
    probe = subprocess.run(
        [sys.executable, "-c", "import minidep; print(minidep.VALUE)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "41"

    # A requirement that cannot be installed rejects the revision like an import error.
    write_tree(req_source, {"requirements.txt": "./wheels/missing-1.0-py3-none-any.whl\n"})
    bad = publish(req_source)
    result = syncer.poll()
    assert result.outcome == REJECTED
    assert "Cannot install the requirements in requirements.txt" in result.message
    assert f"still serving {good.revision[:12]}" in result.message
    assert syncer.serving == good.revision
    served = code_dir / "main" / "current" / "requirements.txt"
    assert served.read_text() == USES_MINIDEP["requirements.txt"]
    status = read_status(code_dir / "main")
    assert status is not None
    assert (status.state, status.revision, status.bad_revision) == ("error", good.revision, bad.revision)
    assert not (code_dir / "main" / "releases" / bad.revision).exists()
    assert [p.name for p in (code_dir / ".requirements").iterdir()] == [site.parent.name]
    assert syncer.poll().outcome == UNCHANGED  # not retried until a newer manifest


def test_every_code_server_start_gets_the_requirements(
    moto_endpoint: str, bucket: str, publish: Any, req_source: Path, tmp_path: Path
):
    """Warm start after the first sync, restart after a crash, start from disk: each imports minidep."""
    code_dir = tmp_path / "code"
    port = free_port()
    revision = publish(req_source).revision
    env = agent_env(moto_endpoint, bucket, DAGOPS_LOCATION="main", DAGOPS_CODE_DIR=str(code_dir))
    args = ["run", "--interval", "0.5", "--grpc-host", "127.0.0.1", "--grpc-port", str(port)]

    def serving(not_pid: int | None = None) -> int | None:
        return serving_pid(code_dir / "main", revision, not_pid)

    log_path = tmp_path / "agent.log"
    with agent_process(args, env, log_path) as proc:
        pid = wait_for(lambda: serving(), 120, "the first (warm) code server", proc)
        os.kill(pid, signal.SIGKILL)
        pid = wait_for(lambda: serving(not_pid=pid), 120, "the restart after a crash", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    with agent_process(args, env, log_path) as proc:
        wait_for(lambda: serving(not_pid=pid), 120, "the start from disk", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    text = log_path.read_text()
    assert "code server started warm" in text
    assert "restarting code server: it exited with code -9" in text
    assert "from disk" in text
    assert "ModuleNotFoundError" not in text
    assert text.count("installing the requirements") == 1  # later starts are cache hits
