"""The GitHub workflows: actionlint and zizmor pass, and the release rules hold (pins, OIDC, permissions,
change detection that sends DAG-only changes to S3 without an image build)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not path:
        pytest.skip(f"{name} is not installed")
    return path


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def _uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).startswith(f"{action}@")


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in _steps(job))


def test_actionlint_passes() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    assert files
    proc = subprocess.run([_tool("actionlint"), *files], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_passes_offline() -> None:
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--persona=auditor", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_actions_pinned_permissions_scoped_and_no_stored_keys(name: str) -> None:
    workflow = _load(name)
    assert workflow["permissions"] == {}
    text = (WORKFLOWS / name).read_text()
    assert "secrets.AWS" not in text and "aws-access-key-id" not in text
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{job_name} has no permissions block"
        assert "write" not in {v for k, v in job["permissions"].items() if k != "id-token"}, job_name
        for step in _steps(job):
            if "uses" in step:
                assert SHA_PIN.match(step["uses"]), f"{job_name}: {step['uses']} is not pinned by commit SHA"
            if _uses(step, "actions/checkout"):
                assert step["with"]["persist-credentials"] is False, job_name
            if _uses(step, "aws-actions/configure-aws-credentials"):
                assert job["permissions"].get("id-token") == "write", job_name
                assert re.fullmatch(r"\$\{\{ vars\.AWS_\w+_ROLE_ARN \}\}", step["with"]["role-to-assume"]), (
                    job_name
                )
        if job["permissions"].get("id-token") == "write":
            assert any(_uses(s, "aws-actions/configure-aws-credentials") for s in _steps(job)), job_name


def test_ci_runs_every_nox_session_and_plans_each_environment() -> None:
    ci = _load("ci.yml")
    assert set(ci["on"]) == {"pull_request"}
    noxfile = (REPO / "noxfile.py").read_text()
    listed = re.search(r"nox\.options\.sessions = \[(.*?)\]", noxfile, re.S)
    assert listed, "noxfile.py sets no default sessions"
    default_sessions = set(re.findall(r'"(\w+)"', listed.group(1)))
    assert set(ci["jobs"]["nox"]["strategy"]["matrix"]["session"]) == default_sessions
    plan = ci["jobs"]["plan"]
    assert plan["strategy"]["matrix"]["environment"] == ["dev", "prod"]
    assert "plan -input=false" in _runs(plan)
    assert "apply" not in _runs(plan)
    assert any(_uses(s, "opentofu/setup-opentofu") for s in _steps(plan))


def test_pull_request_plans_never_touch_the_state() -> None:
    """The plan role runs code nobody reviewed: it plans against an empty local state (issue 11, item 7)."""
    plan = _load("ci.yml")["jobs"]["plan"]
    runs = _runs(plan)
    assert "backend.hcl" not in runs and "-backend-config" not in runs, "the plan job reads the remote state"
    assert re.search(r'backend "local"', runs), "the plan job must override the S3 backend with a local one"
    roles = [
        s["with"]["role-to-assume"] for s in _steps(plan) if _uses(s, "aws-actions/configure-aws-credentials")
    ]
    assert roles == ["${{ vars.AWS_PLAN_ROLE_ARN }}"]


def test_deploy_jobs_assume_the_role_of_their_environment() -> None:
    """Each environment has its own deploy role that trusts only jobs of that GitHub Environment: every job
    that assumes it runs in the environment whose AWS_DEPLOY_ROLE_ARN variable names that role."""
    deploy = _load("deploy.yml")
    assuming = 0
    for name, job in deploy["jobs"].items():
        for step in _steps(job):
            if _uses(step, "aws-actions/configure-aws-credentials"):
                assuming += 1
                assert step["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}", name
                assert job.get("environment") == "${{ matrix.environment }}", f"{name} runs in no environment"
    assert assuming >= 3


def _matches(pattern: str, path: str) -> bool:
    regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.fullmatch(regex, path) is not None


def _changed(filters: dict[str, list[str]], paths: list[str]) -> set[str]:
    return {
        name for name, patterns in filters.items() if any(_matches(p, f) for p in patterns for f in paths)
    }


def test_change_detection_routes_each_kind_of_change() -> None:
    deploy = _load("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    step = next(s for s in _steps(deploy["jobs"]["changes"]) if _uses(s, "dorny/paths-filter"))
    filters = yaml.safe_load(step["with"]["filters"])
    assert _changed(filters, ["code_locations/main/assets/orders.py"]) == {"dags"}
    assert _changed(filters, ["src/dagops/runtime/sync/agent.py", "uv.lock"]) == {"runtime"}
    assert _changed(filters, ["images/Dockerfile"]) == {"runtime"}
    assert _changed(filters, ["modules/ecs_service/main.tf", "live/prod/terraform.tfvars"]) == {"infra"}
    assert _changed(filters, ["README.md", "tests/unit/test_compose.py"]) == set()
    outputs = deploy["jobs"]["changes"]["outputs"]
    assert set(outputs) == {"dags", "runtime", "infra"}


def test_each_job_does_only_its_kind_of_release() -> None:
    jobs = _load("deploy.yml")["jobs"]
    dags, runtime, infra = jobs["dags"], jobs["runtime"], jobs["infra"]

    assert "needs.changes.outputs.dags == 'true'" in dags["if"]
    assert "invoke dags.deploy --env" in _runs(dags)
    assert "image" not in _runs(dags) and not any(
        _uses(s, "docker/setup-buildx-action") for s in _steps(dags)
    )

    assert "needs.changes.outputs.runtime == 'true'" in runtime["if"]
    assert "invoke image.push --env" in _runs(runtime)
    assert re.search(r"invoke deploy --env \S+ --image-tag", _runs(runtime))

    assert "needs.changes.outputs.infra == 'true'" in infra["if"]
    assert "apply -input=false -auto-approve" in _runs(infra)

    for job in (dags, runtime, infra):
        assert job["strategy"]["matrix"]["environment"] == ["dev", "prod"]
        assert job["strategy"]["max-parallel"] == 1  # dev first, then prod
        assert job["environment"] == "${{ matrix.environment }}"  # prod waits for its GitHub Environment


def test_the_ci_script_runs_readmes_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"Run the tests.*?```bash\n(.*?)\n```", readme, re.S)
    assert block, "README.md shows no test command"
    command = block.group(1).split("&&")[-1].strip()
    script = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert command == "uv run --frozen invoke test"
    assert command in script, script


def test_invoke_test_runs_every_default_nox_session_once_with_infra_beside_the_containers() -> None:
    from dagops.operator import testrun

    sessions = testrun.default_sessions()  # nox itself reads noxfile.py's default list
    noxfile = (REPO / "noxfile.py").read_text()
    listed = re.search(r"nox\.options\.sessions = \[(.*?)\]", noxfile, re.S)
    assert listed and sessions == re.findall(r'"(\w+)"', listed.group(1))
    steps = testrun.plan(sessions)
    assert sorted(steps.before + steps.beside + steps.after) == sorted(sessions)
    assert steps.beside == ["infra"] and steps.after[0] == "containers"
    assert "unit" in steps.before and "containers_arm64" in steps.after
    # Without the container session to run beside, everything runs in order.
    assert testrun.plan(["lint", "infra"]) == testrun.Plan(["lint", "infra"], [], [])


def test_invoke_test_runs_the_background_session_beside_the_others_and_reports_any_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagops.operator import testrun

    # A noxfile of the same shape, each session recording when it ran; "containers" fails.
    (tmp_path / "noxfile.py").write_text(
        "import time\n"
        "import nox\n"
        'nox.options.sessions = ["lint", "containers", "infra", "security"]\n'
        "def _mark(name, seconds=0.0):\n"
        "    start = time.time()\n"
        "    time.sleep(seconds)\n"
        "    with open(name + '.ran', 'w') as f:\n"
        "        f.write(f'{start} {time.time()}')\n"
        "@nox.session(venv_backend='none')\n"
        "def lint(session): _mark('lint')\n"
        "@nox.session(venv_backend='none')\n"
        "def containers(session):\n"
        "    _mark('containers', 2.0)\n"
        "    session.error('container test failed')\n"
        "@nox.session(venv_backend='none')\n"
        "def infra(session):\n"
        "    print('infra says hello')\n"
        "    _mark('infra', 2.0)\n"
        "@nox.session(venv_backend='none')\n"
        "def security(session): _mark('security')\n"
    )
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    assert testrun.run(say=said.append) == 1  # one session failed: the run fails, every session ran
    spans = {
        name: tuple(map(float, (tmp_path / f"{name}.ran").read_text().split()))
        for name in ("lint", "containers", "infra", "security")
    }
    assert spans["lint"][1] <= spans["infra"][0]  # infra starts after the sessions before the containers
    # The two overlap in time.
    assert spans["infra"][0] < spans["containers"][1] and spans["containers"][0] < spans["infra"][1]
    assert "infra says hello" in capsys.readouterr().out  # the background session's output is shown
    assert any("background" in line for line in said)
