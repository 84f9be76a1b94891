"""The invoke tasks dags.deploy and dags.status, called as invoke calls them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from invoke import Context
from invoke.exceptions import Exit
from synctrees import GOOD_TREE, write_tree

from dagops.operator.tasks import dags
from dagops.runtime.sync.syncer import Syncer

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    write_tree(root / "code_locations" / "main", GOOD_TREE)
    write_tree(
        root / "code_locations" / "other", {"defs.py": "import dagster as dg\ndefs = dg.Definitions()\n"}
    )
    (root / "code_locations" / "locations.yaml").write_text(
        "locations:\n"
        "- {name: main, source: code_locations/main, entry: definitions.py}\n"
        "- {name: other, source: code_locations/other, entry: defs.py}\n"
    )
    monkeypatch.setenv("DAGOPS_ROOT", str(root))
    monkeypatch.setenv("DAGOPS_STATE_DIR", str(tmp_path / "state"))
    return root


def keys(s3: Any, bucket: str) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_deploy_publishes_every_location_then_only_changes(
    project: Path, s3: Any, bucket: str, moto_endpoint: str, capsys: Any
):
    dags.deploy(Context(), bucket=bucket, endpoint_url=moto_endpoint, wait=False)
    out = capsys.readouterr().out
    assert f"publishing 2 code location(s) to s3://{bucket}/dags/" in out
    assert "main: 4 uploaded, 0 deleted, 0 unchanged" in out
    assert "other: 1 uploaded, 0 deleted, 0 unchanged" in out
    assert {"dags/main/_manifest.json", "dags/other/_manifest.json", "dags/other/defs.py"} <= keys(s3, bucket)
    (project / "code_locations" / "main" / "data" / "seed.csv").write_text("a,b\n7,8\n")
    dags.deploy(Context(), location="main", bucket=bucket, endpoint_url=moto_endpoint, wait=False)
    out = capsys.readouterr().out
    assert "main: 1 uploaded, 0 deleted, 3 unchanged" in out
    assert "other:" not in out


def test_deploy_takes_the_bucket_from_the_environment(
    project: Path, s3: Any, bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
):
    monkeypatch.setenv("DAGSTER_S3_BUCKET", bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    dags.deploy(Context(), location="other", wait=False)
    assert "other: 1 uploaded" in capsys.readouterr().out
    assert "dags/other/_manifest.json" in keys(s3, bucket)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"location": "Bad Name"}, "Invalid code location name"),
        ({"location": "unknown"}, "No code location named 'unknown'"),
        ({"env": "NOPE"}, "Invalid environment name"),
        ({"env": "staging"}, "Unknown environment 'staging'"),
    ],
)
def test_deploy_bad_input_is_one_sentence_and_writes_nothing(
    project: Path, s3: Any, bucket: str, moto_endpoint: str, kwargs: dict, message: str
):
    with pytest.raises(Exit) as failure:
        dags.deploy(Context(), bucket=bucket, endpoint_url=moto_endpoint, **kwargs)
    assert failure.value.code == 1
    assert message in str(failure.value.message)
    assert keys(s3, bucket) == set()


def test_deploy_without_a_local_stack_says_so(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DAGOPS_DEV_S3_PORT", "1")  # nothing listens there
    with pytest.raises(Exit) as failure:
        dags.deploy(Context())
    assert "No S3 endpoint answers" in str(failure.value.message)


def test_status_prints_each_agent(
    project: Path, s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path, capsys: Any
):
    code_dir = tmp_path / "code"
    with pytest.raises(Exit, match="No sync agent status"):
        dags.status(Context(), code_dir=str(code_dir))
    dags.deploy(Context(), location="main", bucket=bucket, endpoint_url=moto_endpoint, wait=False)
    syncer = Syncer(s3, bucket, "main", code_dir)
    syncer.prepare()
    revision = syncer.poll().revision
    capsys.readouterr()
    dags.status(Context(), code_dir=str(code_dir))
    out = capsys.readouterr().out
    assert "location      main\nstate         ok" in out
    assert f"revision      {revision[:12]}" in out  # type: ignore[index]
    assert "location      other\nstate         (no agent has run)" in out


def _agent_serving(s3: Any, bucket: str, location: str, bad: bool = False) -> threading.Thread:
    """A sync agent in a thread: polls once the manifest is there and reports through S3 as the agent does."""
    from dagops.runtime.sync.report import Reporter

    def run() -> None:
        reporter = Reporter(s3, bucket, location, agent="unit-agent")
        reporter.update(None, True, None, None)  # running before the publish
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                manifest = json.loads(
                    s3.get_object(Bucket=bucket, Key=f"dags/{location}/_manifest.json")["Body"].read()
                )
            except s3.exceptions.NoSuchKey:
                time.sleep(0.05)
                continue
            error = "revision x rejected, still serving y: SyntaxError: invalid syntax (a.py, line 1)"
            if bad:
                reporter.update(None, True, manifest["revision"], error)
            else:
                reporter.update(manifest["revision"], True, None, None)
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_deploy_waits_until_the_agents_serve_the_new_revision(
    project: Path, s3: Any, bucket: str, moto_endpoint: str, capsys: Any
):
    agent = _agent_serving(s3, bucket, "main")
    dags.deploy(Context(), location="main", bucket=bucket, endpoint_url=moto_endpoint, timeout="30")
    agent.join(5)
    out = capsys.readouterr().out
    assert "main: serving" in out and "deployed: every agent serves the new code" in out, out
    # Nothing changed: no wait, no agent needed.
    dags.deploy(Context(), location="main", bucket=bucket, endpoint_url=moto_endpoint, timeout="1")
    assert "waiting" not in capsys.readouterr().out


def test_deploy_exits_non_zero_with_the_import_error_when_rejected(
    project: Path, s3: Any, bucket: str, moto_endpoint: str
):
    _agent_serving(s3, bucket, "main", bad=True)
    with pytest.raises(Exit) as failure:
        dags.deploy(Context(), location="main", bucket=bucket, endpoint_url=moto_endpoint, timeout="30")
    assert failure.value.code == 1
    assert "SyntaxError: invalid syntax" in str(failure.value.message)


def test_deploy_times_out_in_one_sentence_when_no_agent_answers(
    project: Path, s3: Any, bucket: str, moto_endpoint: str
):
    with pytest.raises(Exit) as failure:
        dags.deploy(Context(), location="main", bucket=bucket, endpoint_url=moto_endpoint, timeout="1")
    assert "no running sync agent reported" in str(failure.value.message)
    with pytest.raises(Exit, match="positive whole number"):
        dags.deploy(Context(), location="main", bucket=bucket, endpoint_url=moto_endpoint, timeout="soon")


def test_status_reads_the_agents_reports_when_their_status_is_in_containers(
    project: Path, s3: Any, bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
):
    # The compose stack's agents keep their status files in their containers: no embedded stack runs
    # here, so dags.status reads what they report through the local S3 endpoint.
    monkeypatch.setenv("DAGOPS_DEV_S3_URL", moto_endpoint)
    monkeypatch.setenv("DAGOPS_DEV_BUCKET", bucket)
    from dagops.runtime.sync.report import Reporter

    error = "revision bbbb rejected, still serving aaaa: SyntaxError: invalid syntax (a.py, line 1)"
    Reporter(s3, bucket, "main", agent="compose-agent").update("a" * 40, True, "b" * 40, error)
    dags.status(Context())
    out = capsys.readouterr().out
    assert "location      main\nagent         compose-agent\nstate         serving" in out, out
    assert f"revision      {'a' * 12}\nlast error    {error}" in out, out
    assert "location      other\nstate         (no agent has run)" in out, out
    dags.status(Context(), json_=True)
    found = json.loads(capsys.readouterr().out)
    assert found["main"]["agents"][0]["bad_revision"] == "b" * 40 and found["other"] is None
    # With --code-dir only the status files count.
    with pytest.raises(Exit, match="No sync agent status"):
        dags.status(Context(), code_dir=str(project / "nowhere"))
