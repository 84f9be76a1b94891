"""The standby: a process that has imported dagster before the next change arrives, then checks that change
and becomes its code server; one at a time, used only with the same environment, gone with the agent."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from synctrees import GOOD_TREE, agent_env, agent_process, serving_pid, write_tree

from dagops.ports import free_port
from dagops.runtime.sync.codeserver import CodeServer, grpc_serving
from dagops.runtime.sync.status import read_status

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


def _standbys(parent: int, serving: int | None = None) -> list[int]:
    """Pids of the ``warmserver --standby`` processes whose parent is ``parent``, but ``serving``
    (a standby that took a job shows that job's command line instead)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"--standby" in argv and int(proc.name) != serving:
            found.append(int(proc.name))
    return found


def _one(found: list[int]) -> list[int] | None:
    """``found`` when it holds exactly one pid (a server retiring in the background may show for a moment)."""
    return found if len(found) == 1 else None


def test_the_standby_checks_the_change_and_becomes_its_code_server(
    moto_endpoint: str, bucket: str, publish: Any, source: Path, tmp_path: Path
) -> None:
    code_dir = tmp_path / "code"
    port = free_port()
    first = publish(source)
    env = agent_env(
        moto_endpoint,
        bucket,
        DAGOPS_LOCATION="main",
        DAGOPS_CODE_DIR=str(code_dir),
        DAGOPS_SYNC_STANDBY="true",
    )
    log_path = tmp_path / "agent.log"
    status_dir = code_dir / "main"
    args = ["run", "--interval", "0.5", "--grpc-host", "127.0.0.1", "--grpc-port", str(port)]
    with agent_process(args, env, log_path) as proc:
        pid = wait_for(lambda: serving_pid(status_dir, first.revision), 120, "the first code server", proc)
        (standby,) = wait_for(
            lambda: _one(_standbys(proc.pid, pid)), 60, "a standby after the first serve", proc
        )
        # A change: the standby, which had dagster imported already, checks it and then serves it.
        marker = tmp_path / "imports.txt"
        write_tree(source, {"pipelines/more.py": f"""
            import os

            import dagster as dg

            with open({str(marker)!r}, "a") as fh:
                fh.write(f"{{os.getpid()}} {{__file__}}\\n")


            @dg.asset
            def more() -> int:
                return 4
        """, "definitions.py": """
            import dagster as dg

            from pipelines.assets import numbers
            from pipelines.more import more

            defs = dg.Definitions(assets=[numbers, more])
        """})  # fmt: skip
        second = publish(source)
        served = wait_for(
            lambda: serving_pid(status_dir, second.revision, pid), 120, "the second release", proc
        )
        assert served == standby
        assert grpc_serving("127.0.0.1", port)
        # Checked in its build folder, then loaded afresh from current/ by the same process.
        imported = [line.split(" ", 1) for line in marker.read_text().splitlines()]
        assert {pid for pid, _ in imported} == {str(standby)}
        assert "/releases/.build-" in imported[0][1]
        assert imported[-1][1] == str(code_dir / "main" / "current" / "pipelines" / "more.py")
        # The next standby, one at a time.
        (next_standby,) = wait_for(lambda: _one(_standbys(proc.pid, standby)), 60, "the next standby", proc)
        assert next_standby != standby
        # A syntax error: rejected by the standby's check, the last good code keeps serving, reported.
        write_tree(source, {"pipelines/more.py": "def broken(:\n"})
        bad = publish(source)
        wait_for(
            lambda: (s := read_status(status_dir)) and s.bad_revision == bad.revision,
            120,
            "the rejection",
            proc,
        )
        status = read_status(status_dir)
        assert status is not None and "SyntaxError" in (status.last_error or "")
        assert serving_pid(status_dir, second.revision) == standby
        assert grpc_serving("127.0.0.1", port)
        (after_reject,) = wait_for(
            lambda: _one(_standbys(proc.pid, standby)), 60, "a standby after the rejection", proc
        )
        assert after_reject != next_standby
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        wait_for(
            lambda: not any(Path(f"/proc/{p}").exists() for p in (after_reject, standby)), 10, "all gone"
        )
    text = log_path.read_text()
    assert "SyntaxError" in text and "rejected" in text


def test_a_standby_with_other_requirements_is_not_used_and_not_left_behind(tmp_path: Path) -> None:
    """Another environment outside the tree (other requirements) would load other packages: a fresh
    process checks, and the standby exits rather than waiting beside it. With the same environment the
    standby checks, and the next one starts at once."""
    tree = write_tree(tmp_path / "loc" / "releases" / ".build-1", GOOD_TREE)
    (tmp_path / "loc" / "current").mkdir()
    server = CodeServer("main", tmp_path / "loc", "127.0.0.1", free_port(), lambda _: None, keep_standby=True)
    other = tmp_path / "other-requirements"
    other.mkdir()
    base = {k: v for k, v in agent_env("http://127.0.0.1:1", None).items() if k != "PYTHONPATH"}
    server.spawn_standby(base)
    assert server.standby is not None
    standby = server.standby[0]
    try:
        assert (
            server.warm_check(tree, "definitions.py", timeout=120, env={**base, "PYTHONPATH": str(other)})
            is None
        )
        assert server.warm is not None and server.warm.pid != standby.pid
        assert standby.poll() is not None and not server.has_standby()
        # With the same environment the standby is the one that checks.
        server.spawn_standby(base)
        assert server.standby is not None
        again = server.standby[0]
        assert server.warm_check(tree, "definitions.py", timeout=120, env=dict(base)) is None
        assert server.warm is not None and server.warm.pid == again.pid
        # Handing the check over started the next standby at once (it imports while this one serves).
        assert server.has_standby() and server.standby is not None
        following = server.standby[0]
        assert following.pid not in (standby.pid, again.pid)
    finally:
        server.discard_standby()
        server.discard_warm()
    assert standby.poll() is not None and again.poll() is not None and following.poll() is not None
