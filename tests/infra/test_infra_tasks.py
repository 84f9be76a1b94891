"""`invoke infra.*`: which binary runs, with which arguments, and what a user who gets it wrong sees.

A stand-in `tofu`/`terraform` on PATH records its arguments (the real binary is exercised by
test_static.py and test_emulated_apply.py); the invoke command line is run as a real subprocess.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from invoking import run_invoke
from tfharness import REPO, copy_tree

from dagops.errors import DagopsError
from dagops.operator import infra

FAKE = """#!{python}
import json, os, sys
with open(os.environ["FAKE_TF_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
if "output" in sys.argv and os.environ.get("FAKE_TF_OUTPUT"):
    print(os.environ["FAKE_TF_OUTPUT"])
fail = os.environ.get("FAKE_TF_FAIL")
sys.exit(1 if fail and any(a.endswith("/live/" + fail) for a in sys.argv) else 0)
"""


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A tree copy as DAGOPS_ROOT and a PATH holding only stand-in binaries (plus python)."""
    root = copy_tree(tmp_path / "repo")
    (root / "tasks.py").write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("DAGOPS_ROOT", str(root))
    monkeypatch.setenv("FAKE_TF_LOG", str(log))
    monkeypatch.setenv("PATH", str(bindir))
    return {"root": root, "bin": bindir, "log": log}


def install(bindir: Path, name: str) -> None:
    path = bindir / name
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_tofu_is_preferred_and_init_uses_the_backend_file(fake_env: dict[str, Path]) -> None:
    install(fake_env["bin"], "tofu")
    install(fake_env["bin"], "terraform")
    infra.execute("init", ["prod"])
    assert calls(fake_env["log"]) == [
        [
            "tofu",
            f"-chdir={fake_env['root'] / 'live' / 'prod'}",
            "init",
            "-input=false",
            "-backend-config=backend.hcl",
        ]
    ]


def test_terraform_is_the_fallback_and_says_so(
    fake_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    install(fake_env["bin"], "terraform")
    infra.execute("plan", ["dev"])
    assert calls(fake_env["log"])[0][:3] == [
        "terraform",
        f"-chdir={fake_env['root'] / 'live' / 'dev'}",
        "plan",
    ]
    err = capsys.readouterr().err
    assert "using terraform" in err
    assert "running terraform -chdir=live/dev plan -input=false (terraform)" in err


def test_no_binary_is_one_clear_sentence(fake_env: dict[str, Path]) -> None:
    with pytest.raises(DagopsError, match="Neither tofu nor terraform is on PATH"):
        infra.execute("plan", ["dev"])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("Prod", "Invalid environment name 'Prod'"),
        ("", "Invalid environment name ''"),
        ("../prod", "Invalid environment name"),
        ("prod; rm -rf /", "Invalid environment name"),
        ("staging", "Unknown environment 'staging': expected one of dev, prod"),
        ("bootstrap", "Unknown environment 'bootstrap'"),
    ],
)
def test_bad_environment_runs_nothing(fake_env: dict[str, Path], env: str, message: str) -> None:
    install(fake_env["bin"], "tofu")
    with pytest.raises(DagopsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        infra.execute("apply", [env])
    assert calls(fake_env["log"]) == []


def test_init_without_backend_file_runs_nothing(fake_env: dict[str, Path]) -> None:
    install(fake_env["bin"], "tofu")
    (fake_env["root"] / "live" / "dev" / "backend.hcl").unlink()
    with pytest.raises(DagopsError, match=r"has no backend\.hcl"):
        infra.execute("init", ["dev"])
    assert calls(fake_env["log"]) == []


def test_destroying_prod_needs_a_terminal_or_yes(fake_env: dict[str, Path]) -> None:
    install(fake_env["bin"], "tofu")
    with pytest.raises(DagopsError, match="needs --yes"):
        infra.execute("destroy", ["prod"], interactive=False)
    with pytest.raises(DagopsError, match="cancelled"):
        infra.execute("destroy", ["prod"], interactive=True, ask=lambda _prompt: "yes")
    assert calls(fake_env["log"]) == []
    infra.execute("destroy", ["prod"], interactive=True, ask=lambda _prompt: "prod")
    assert calls(fake_env["log"])[-1][2:] == ["destroy", "-input=false", "-auto-approve"]


def test_destroy_with_yes_and_dev_destroy_left_to_tofu(fake_env: dict[str, Path]) -> None:
    install(fake_env["bin"], "tofu")
    infra.execute("destroy", ["prod"], yes=True)
    # dev is not protected: tofu asks its own question (no -auto-approve).
    infra.execute("destroy", ["dev"], interactive=False)
    made = calls(fake_env["log"])
    assert made[0][2:] == ["destroy", "-input=false", "-auto-approve"]
    assert made[1][2:] == ["destroy", "-input=false"]


def test_plan_all_goes_through_every_environment_and_names_failures(fake_env: dict[str, Path]) -> None:
    install(fake_env["bin"], "tofu")
    os.environ["FAKE_TF_FAIL"] = "dev"
    try:
        with pytest.raises(DagopsError, match="tofu plan failed for: dev"):
            infra.execute("plan", infra.environments())
    finally:
        del os.environ["FAKE_TF_FAIL"]
    assert [c[1].rsplit("/", 1)[1] for c in calls(fake_env["log"])] == ["dev", "prod"]


def test_output_json_hides_sensitive_values(
    fake_env: dict[str, Path], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install(fake_env["bin"], "tofu")
    outputs = {
        "bucket_name": {"sensitive": False, "type": "string", "value": "dagops-dev-123456789012"},
        "aws_secret_access_key": {"sensitive": True, "type": "string", "value": "s3cr3t-Value"},
    }
    monkeypatch.setenv("FAKE_TF_OUTPUT", json.dumps(outputs))
    infra.execute("output", ["dev"], json_output=True)
    assert calls(fake_env["log"])[0][2:] == ["output", "-json"]
    printed = capfd.readouterr()
    assert "s3cr3t-Value" not in printed.out + printed.err
    shown = json.loads(printed.out)
    assert shown["bucket_name"]["value"] == "dagops-dev-123456789012"
    assert shown["aws_secret_access_key"] == {"sensitive": True, "type": "string", "value": None}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["infra.plan", "--env", "Prod"], "error: Invalid environment name 'Prod'"),
        (["infra-apply", "--env", "staging"], "error: Unknown environment 'staging'"),
        (["infra.plan"], "error: Give either --env ENV or --all."),
        (["infra-destroy", "--env", "prod"], "error: Destroying 'prod' needs --yes"),
    ],
)
def test_invoke_gives_one_line_and_exit_1(fake_env: dict[str, Path], args: list[str], message: str) -> None:
    install(fake_env["bin"], "tofu")
    env = {**os.environ, "PATH": f"{fake_env['bin']}{os.pathsep}{Path(sys.executable).parent}"}
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr
    assert calls(fake_env["log"]) == []


def test_invoke_plan_all_and_aliases_run_tofu(fake_env: dict[str, Path]) -> None:
    install(fake_env["bin"], "tofu")
    env = {**os.environ, "PATH": f"{fake_env['bin']}{os.pathsep}{Path(sys.executable).parent}"}
    assert run_invoke("infra.plan", "--all", env=env).returncode == 0
    assert run_invoke("infra-init", "--env", "dev", env=env).returncode == 0
    made = [(c[1].rsplit("/", 1)[1], c[2]) for c in calls(fake_env["log"])]
    assert made == [("dev", "plan"), ("prod", "plan"), ("dev", "init")]


def test_the_deploys_targeted_apply_passes_its_targets(fake_env: dict[str, Path]) -> None:
    # A first release applies the run task definition alone before the services (dagops.operator.aws.ecs).
    install(fake_env["bin"], "tofu")
    infra.execute("apply", ["prod"], yes=True, targets=["module.dagster.module.run_task"])
    assert calls(fake_env["log"]) == [
        ["tofu", f"-chdir={fake_env['root'] / 'live' / 'prod'}", "apply", "-input=false", "-auto-approve",
         "-target=module.dagster.module.run_task"],
    ]  # fmt: skip
