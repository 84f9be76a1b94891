"""The code server passes the location's run role (DAGOPS_RUN_TASK_ROLE_ARN) as its container context.

Both ways the agent starts ``dagster api grpc`` carry ``--container-context '{"ecs": {"task_role_arn":
ARN}}'`` when the variable is set and no such flag when it is not: the cold start (a child process) and
the warm path (the import check that runs dagster's command line in-process). Checked on the argument
lists (a stand-in interpreter records them) and end to end: a real agent's real code server reports the
context over gRPC, which is what Dagster stores with each run and the run launcher reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import ListRepositoriesResponse
from dagster._serdes import deserialize_value
from polling import wait_for
from synctrees import agent_env

from dagops.errors import DagopsError
from dagops.ports import free_port
from dagops.runtime.sync.codeserver import CodeServer, run_container_context
from dagops.runtime.sync.status import read_status

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket

ARN = "arn:aws:iam::123456789012:role/dagops-prod-run-main"
CONTEXT = {"ecs": {"task_role_arn": ARN}}


def test_container_context_comes_from_the_environment() -> None:
    assert json.loads(run_container_context({"DAGOPS_RUN_TASK_ROLE_ARN": ARN}) or "") == CONTEXT
    assert run_container_context({}) is None
    assert run_container_context({"DAGOPS_RUN_TASK_ROLE_ARN": "  "}) is None


@pytest.mark.parametrize("bad", ["dagops-prod-run-main", "arn:aws:s3:::bucket", "arn:aws:iam::1:role/x"])
def test_a_value_that_is_not_a_role_arn_is_one_clear_error(bad: str) -> None:
    with pytest.raises(DagopsError, match=r"DAGOPS_RUN_TASK_ROLE_ARN=.* is not an IAM role ARN"):
        run_container_context({"DAGOPS_RUN_TASK_ROLE_ARN": bad})


def _recording_python(tmp_path: Path) -> tuple[str, Path]:
    """An 'interpreter' that records its argv and, as a warm check, reports FAIL on its --result-fd."""
    record = tmp_path / "argv.jsonl"
    script = tmp_path / "python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'a') as fh:\n"
        "    fh.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if '--result-fd' in sys.argv:\n"
        "    os.write(int(sys.argv[sys.argv.index('--result-fd') + 1]), b'FAIL recorded\\n')\n"
    )
    script.chmod(0o755)
    return str(script), record


def _context_flag(args: list[str]) -> str | None:
    return args[args.index("--container-context") + 1] if "--container-context" in args else None


@pytest.mark.parametrize("env", [{"DAGOPS_RUN_TASK_ROLE_ARN": ARN}, {}], ids=["set", "unset"])
def test_cold_start_and_warm_path_pass_the_context_only_when_set(tmp_path: Path, env: dict[str, str]) -> None:
    python, record = _recording_python(tmp_path)
    (tmp_path / "loc" / "current").mkdir(parents=True)
    server = CodeServer(
        "main", tmp_path / "loc", "127.0.0.1", free_port(), lambda _: None, python=python,
        container_context=run_container_context(env),
    )  # fmt: skip
    # Warm path: the arguments after "--" are what warmserver runs in-process as `dagster ...`.
    assert server.warm_check(tmp_path / "loc" / "current", "definitions.py", timeout=30) == "recorded"
    # Cold start: a `python -m dagster api grpc ...` child.
    server.start("definitions.py")
    assert server.proc is not None
    server.proc.wait(30)
    warm, cold = [json.loads(line) for line in record.read_text().splitlines()]
    in_process = warm[warm.index("--") + 1 :]
    assert warm[:2] == ["-m", "dagops.runtime.sync.warmserver"] and in_process[:2] == ["api", "grpc"]
    assert cold[:4] == ["-m", "dagster", "api", "grpc"]
    for args in (in_process, cold):
        flag = _context_flag(args)
        if env:
            assert flag is not None and json.loads(flag) == CONTEXT
        else:
            assert flag is None, args


@pytest.mark.parametrize("role", [ARN, None], ids=["set", "unset"])
def test_the_agents_code_server_reports_the_context_over_grpc(
    moto_endpoint: str, bucket: str, publish: object, source: Path, tmp_path: Path, role: str | None
) -> None:
    release = publish(source)  # type: ignore[operator]
    code_dir = tmp_path / "code"
    port = free_port()
    extra = {"DAGOPS_LOCATION": "main", "DAGOPS_CODE_DIR": str(code_dir)}
    if role:
        extra["DAGOPS_RUN_TASK_ROLE_ARN"] = role
    env = agent_env(moto_endpoint, bucket, **extra)
    assert ("DAGOPS_RUN_TASK_ROLE_ARN" in env) is bool(role) and "DAGOPS_RUN_TASK_ROLE_ARN" not in os.environ
    with (tmp_path / "agent.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagops.runtime.sync", "run", "--interval", "0.5",
             "--grpc-host", "127.0.0.1", "--grpc-port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def serving() -> bool:
            status = read_status(code_dir / "main")
            return bool(
                status
                and status.revision == release.revision
                and (status.code_server or "").startswith("serving")
            )

        wait_for(serving, 120, "the code server", proc)
        reply = DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories()
        listed = deserialize_value(reply, ListRepositoriesResponse)
        assert (listed.container_context or {}) == (CONTEXT if role else {})
    finally:
        proc.terminate()
        proc.wait(60)
