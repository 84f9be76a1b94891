"""Source trees and agent environments of the sync agent tests (fixtures: tests/conftest.py).

``GOOD_TREE`` is a small code location that imports; ``write_tree(root, files)`` writes such a tree
(dedented; ``replace=True`` removes what was there first); ``tree_contents(root)`` reads one back;
``agent_env(endpoint, bucket)`` is the environment of a sync agent process on a moto server, with fake
credentials and none of the shell's AWS or agent settings;
``serving_pid(status_dir, revision)`` is the code server's pid once the agent's status says it serves it;
``agent_process(args, env, log_path)`` runs ``python -m dagops.runtime.sync ARGS`` for a ``with`` block.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from dagops.runtime.sync.status import read_status

GOOD_TREE = {
    "definitions.py": """
        import dagster as dg

        from pipelines.assets import numbers

        defs = dg.Definitions(assets=[numbers])
    """,
    "pipelines/__init__.py": "",
    "pipelines/assets.py": """
        import dagster as dg


        @dg.asset
        def numbers() -> list[int]:
            return [1, 2, 3]
    """,
    "data/seed.csv": "a,b\n1,2\n",
}


def write_tree(root: Path, files: dict[str, str], replace: bool = False) -> Path:
    """Write ``files`` (relpath -> text, dedented) under ``root``; ``root``. With ``replace``, ``root`` is
    removed first, so it holds exactly ``files`` (a publish that drops a file)."""
    if replace and root.exists():
        shutil.rmtree(root)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def tree_contents(root: Path) -> dict[str, str]:
    """relpath -> text of every file under ``root`` (following the ``current`` symlink)."""
    root = root.resolve()
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def agent_env(endpoint: str, bucket: str | None, **extra: str) -> dict[str, str]:
    """The environment of a sync agent process on the S3 at ``endpoint`` (``extra`` added last)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGOPS_", "DAGSTER_S3", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        PYTHONUNBUFFERED="1",
    )
    if bucket:
        env["DAGSTER_S3_BUCKET"] = bucket
    env.update(extra)
    return env


def code_server_pid(state: str | None) -> int | None:
    """The pid in a status's ``code_server`` text ("serving (pid N, ...)") while it says serving."""
    state = state or ""
    return int(state.split("pid ")[1].split(",")[0]) if state.startswith("serving") else None


def serving_pid(status_dir: Path, revision: str, not_pid: int | None = None) -> int | None:
    """The code server's pid once it serves ``revision`` (other than ``not_pid``, still serving the last)."""
    status = read_status(status_dir)
    if not status or status.revision != revision:
        return None
    pid = code_server_pid(status.code_server)
    return pid if pid is not None and pid != not_pid else None


@contextlib.contextmanager
def agent_process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A sync agent process (``python -m dagops.runtime.sync ARGS``), its output appended to ``log_path``;
    killed when the block ends with it still running (a test that stops it checks the exit itself)."""
    with log_path.open("a") as log:
        argv = [sys.executable, "-m", "dagops.runtime.sync", *args]
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
