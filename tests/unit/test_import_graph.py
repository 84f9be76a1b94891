"""What the command line and the local supervisor import: no Dagster, no boto3 until a task needs it.

Each check runs in a fresh interpreter (this test process has long imported everything) and reads
``sys.modules`` there: the import graph is behaviour, whatever the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("dagster", "dagster_postgres", "dagster_aws", "boto3", "botocore", "sqlalchemy", "psycopg2")


def _imported_after(code: str) -> list[str]:
    """Top-level packages among HEAVY that a fresh interpreter holds after running ``code``."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_loading_tasks_py_imports_no_dagster_nor_boto3() -> None:
    # What `invoke --list` and `invoke --help TASK` do: load tasks.py and every task module it assembles.
    code = "import sys; sys.path.insert(0, '.'); import tasks; assert tasks.ns.task_names"
    assert _imported_after(code) == []


def test_invoke_list_and_help_answer_without_heavy_imports() -> None:
    # The real command, in-process so sys.modules can be read after it printed the menu.
    code = """
        import contextlib, io, sys
        from invoke import Program
        out = io.StringIO()
        for argv in (["invoke", "--list"], ["invoke", "--help", "dags.deploy"], ["invoke", "--help", "dev"]):
            with contextlib.redirect_stdout(out):
                try:
                    Program(binary="invoke").run(argv, exit=True)
                except SystemExit as done:
                    assert not done.code, done.code
        assert "dags.deploy" in out.getvalue() and "Publish code locations" in out.getvalue()
    """
    assert _imported_after(code) == []


def test_supervisor_writes_dagster_yaml_without_importing_dagster(tmp_path: Path) -> None:
    # `python -m dagops.operator.devstack up` imports the stack, the registry watcher and the publisher, and
    # writes dagster.yaml naming dagops.runtime.pg_storage's classes; the processes it starts import Dagster.
    code = f"""
        from pathlib import Path
        import dagops.operator.devstack.__main__, dagops.operator.devstack.stack
        import dagops.operator.registry_watch, dagops.publish
        from dagops.operator.devstack import dagster_home
        dagster_home.write(
            Path({str(tmp_path)!r}),
            servers=[("main", "127.0.0.1", 4000)],
            max_concurrent_runs=1,
            postgres={{"host": "127.0.0.1", "port": 5432, "user": "u", "password": "p", "db": "d"}},
        )
    """
    assert [m for m in _imported_after(code) if m.startswith("dagster")] == []
    assert (tmp_path / "dagster.yaml").is_file()


@pytest.mark.parametrize("key", ["run_storage", "event_log_storage", "schedule_storage"])
def test_dagster_yaml_names_pg_storages_that_exist(key: str) -> None:
    # dagster_home names the classes as text (so the supervisor need not import them): they must exist.
    import dagster_postgres

    from dagops.operator.devstack import dagster_home
    from dagops.runtime import pg_storage

    assert pg_storage.__name__ == dagster_home.PG_STORAGE_MODULE
    cls = getattr(pg_storage, dagster_home.PG_STORAGE_CLASSES[key])
    base = {
        "run_storage": dagster_postgres.PostgresRunStorage,
        "event_log_storage": dagster_postgres.PostgresEventLogStorage,
        "schedule_storage": dagster_postgres.PostgresScheduleStorage,
    }[key]
    assert issubclass(cls, base)


def test_every_shared_module_is_bound_by_the_import_contract() -> None:
    # lint-imports forbids the shared modules (src/dagops/*.py) to import either half: a new shared module
    # must be named in pyproject.toml's contract, or that rule would not cover it.
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    shared = next(c for c in contracts if "dagops.runtime" in c["forbidden_modules"])
    modules = {f"dagops.{p.stem}" for p in (ROOT / "src" / "dagops").glob("*.py") if p.stem != "__init__"}
    assert set(shared["source_modules"]) == modules
