"""Publishing a code location to S3 (a moto server on loopback): incremental, manifest last, safe."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto_s3 import bucket_objects

from dagops import publish as publish_mod
from dagops.errors import DagopsError
from dagops.manifest import Manifest
from dagops.publish import LOCK_NAME, main, publish_location, unpublish_location

_numbers = itertools.count()
FILES = {
    "definitions.py": "import dagster as dg\ndefs = dg.Definitions()\n",
    "pkg/__init__.py": "",
    "pkg/assets.py": "A = 1\n",
    "sql/query.sql": "select 1\n",
}


pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def manifest_of(s3: Any, bucket: str) -> Manifest:
    return Manifest.from_json(
        s3.get_object(Bucket=bucket, Key="dags/main/_manifest.json")["Body"].read(), "main"
    )


MANIFEST = "_manifest.json"


class Recorder:
    """The S3 operations a client makes, in order: (operation, key)."""

    def __init__(self, s3: Any) -> None:
        self.ops: list[tuple[str, str]] = []
        s3.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, params: Any, **_: Any) -> None:
        key = params.get("url_path", "").lstrip("/")
        self.ops.append((model.name, key))


def test_first_publish_uploads_everything_and_writes_the_manifest(s3: Any, bucket: str, source: Path):
    result = publish_location(s3, bucket, "main", source)
    assert (result.uploaded, result.deleted, result.unchanged, result.manifest_written) == (4, 0, 0, True)
    stored = bucket_objects(s3, bucket)
    assert set(stored) == {f"dags/main/{rel}" for rel in FILES} | {"dags/main/_manifest.json"}
    for rel, text in FILES.items():
        assert stored[f"dags/main/{rel}"] == text.encode()
    manifest = manifest_of(s3, bucket)
    assert manifest.revision == result.revision
    assert set(manifest.files) == set(FILES)
    head = s3.head_object(Bucket=bucket, Key="dags/main/pkg/assets.py")
    assert head["Metadata"]["sha256"] == manifest.files["pkg/assets.py"].sha256


def test_second_publish_of_the_same_tree_writes_nothing(s3: Any, bucket: str, source: Path):
    publish_location(s3, bucket, "main", source)
    etag = s3.head_object(Bucket=bucket, Key="dags/main/_manifest.json")["ETag"]
    recorder = Recorder(s3)
    result = publish_location(s3, bucket, "main", source)
    assert (result.uploaded, result.deleted, result.unchanged, result.manifest_written) == (0, 0, 4, False)
    assert [op for op, _ in recorder.ops] == ["GetObject", "ListObjectsV2"]
    assert result.requests == 2
    assert s3.head_object(Bucket=bucket, Key="dags/main/_manifest.json")["ETag"] == etag


def test_one_changed_file_uploads_one_file_then_the_manifest(s3: Any, bucket: str, source: Path):
    publish_location(s3, bucket, "main", source)
    (source / "pkg" / "assets.py").write_text("A = 2\n")  # same size, new content
    recorder = Recorder(s3)
    result = publish_location(s3, bucket, "main", source)
    assert (result.uploaded, result.unchanged, result.deleted) == (1, 3, 0)
    writes = [(op, key) for op, key in recorder.ops if op in ("PutObject", "DeleteObjects")]
    assert writes == [
        ("PutObject", "dags/main/" + LOCK_NAME),
        ("PutObject", "dags/main/pkg/assets.py"),
        ("PutObject", "dags/main/_manifest.json"),
    ]
    assert bucket_objects(s3, bucket)["dags/main/pkg/assets.py"] == b"A = 2\n"


def test_removed_files_and_stray_keys_are_deleted_after_the_manifest(s3: Any, bucket: str, source: Path):
    publish_location(s3, bucket, "main", source)
    s3.put_object(Bucket=bucket, Key="dags/main/stray/left_over.py", Body=b"drift")
    (source / "sql" / "query.sql").unlink()
    recorder = Recorder(s3)
    result = publish_location(s3, bucket, "main", source)
    assert result.deleted == 2
    ops = [op for op, _ in recorder.ops]
    assert ops.index("DeleteObjects") > ops.index("PutObject")
    manifest_put = recorder.ops.index(("PutObject", "dags/main/_manifest.json"))
    assert ops.index("DeleteObjects") > manifest_put
    stored = bucket_objects(s3, bucket)
    assert "dags/main/sql/query.sql" not in stored
    assert "dags/main/stray/left_over.py" not in stored
    assert "sql/query.sql" not in manifest_of(s3, bucket).files


def test_a_key_deleted_behind_our_back_is_uploaded_again(s3: Any, bucket: str, source: Path):
    publish_location(s3, bucket, "main", source)
    s3.delete_object(Bucket=bucket, Key="dags/main/pkg/assets.py")
    result = publish_location(s3, bucket, "main", source)
    assert (result.uploaded, result.manifest_written) == (1, False)
    assert bucket_objects(s3, bucket)["dags/main/pkg/assets.py"] == b"A = 1\n"


def test_a_failure_mid_upload_leaves_the_old_manifest(s3: Any, bucket: str, source: Path):
    first = publish_location(s3, bucket, "main", source)
    for rel in FILES:
        (source / rel).write_text(f"# v2\n{FILES[rel]}")

    def fail_on_assets(params: Any, model: Any, **_: Any) -> None:
        if model.name == "PutObject" and params.get("url_path", "").endswith("pkg/assets.py"):
            raise EndpointConnectionError(endpoint_url="http://injected-failure")

    s3.meta.events.register("before-call.s3", fail_on_assets)
    with pytest.raises(DagopsError, match="S3 failed while publishing"):
        publish_location(s3, bucket, "main", source)
    s3.meta.events.unregister("before-call.s3", fail_on_assets)
    assert manifest_of(s3, bucket).revision == first.revision
    assert "dags/main/" + LOCK_NAME not in bucket_objects(s3, bucket)  # the lease is released
    second = publish_location(s3, bucket, "main", source)
    assert second.manifest_written and manifest_of(s3, bucket).revision == second.revision


def test_a_revert_after_an_interrupted_publish_uploads_the_content_again(s3: Any, bucket: str, source: Path):
    """Version C is interrupted after overwriting a file of the same size; publishing A again fixes it.

    The manifest still says A, the local tree is A and the listed size matches: only the content (the
    listed ETag against the local MD5) shows that S3 holds C's bytes.
    """
    first = publish_location(s3, bucket, "main", source)
    (source / "pkg" / "assets.py").write_text("A = 9\n")  # version C: same size

    def fail_on_manifest(params: Any, model: Any, **_: Any) -> None:
        if model.name == "PutObject" and params.get("url_path", "").endswith("_manifest.json"):
            raise EndpointConnectionError(endpoint_url="http://injected-failure")

    s3.meta.events.register("before-call.s3", fail_on_manifest)
    with pytest.raises(DagopsError, match="S3 failed while publishing"):
        publish_location(s3, bucket, "main", source)
    s3.meta.events.unregister("before-call.s3", fail_on_manifest)
    assert bucket_objects(s3, bucket)["dags/main/pkg/assets.py"] == b"A = 9\n"  # C's bytes under A's manifest

    (source / "pkg" / "assets.py").write_text(FILES["pkg/assets.py"])  # the revert to A
    recorder = Recorder(s3)
    result = publish_location(s3, bucket, "main", source)
    assert (result.uploaded, result.unchanged, result.manifest_written) == (1, 3, False)
    # Still one list for every ETag: no per-file HEAD (the one HEAD, under the lease, is the manifest's).
    assert [
        op for op, key in recorder.ops if op in ("HeadObject", "ListObjectsV2") and not key.endswith(MANIFEST)
    ] == ["ListObjectsV2"]
    assert result.revision == first.revision
    assert bucket_objects(s3, bucket)["dags/main/pkg/assets.py"] == b"A = 1\n"


def _multipart_put(s3: Any, bucket: str, key: str, body: bytes, sha256: str) -> str:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"sha256": sha256})
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=body)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    return str(done["ETag"])


def test_a_multipart_object_is_compared_by_its_stored_sha256(s3: Any, bucket: str, source: Path):
    publish_location(s3, bucket, "main", source)
    key = "dags/main/pkg/assets.py"
    right = manifest_of(s3, bucket).files["pkg/assets.py"].sha256
    # The same bytes uploaded in parts (as `aws s3 cp` does for large files): kept, after one HEAD.
    assert "-" in _multipart_put(s3, bucket, key, b"A = 1\n", right)
    recorder = Recorder(s3)
    result = publish_location(s3, bucket, "main", source)
    assert (result.uploaded, result.unchanged) == (0, 4)
    assert [op for op, key in recorder.ops if not key.endswith(MANIFEST)].count("HeadObject") == 1
    # Other bytes of the same size in parts, with their own sha256: uploaded again.
    wrong = "0" * 64
    assert wrong != right
    _multipart_put(s3, bucket, key, b"A = 9\n", wrong)
    result = publish_location(s3, bucket, "main", source)
    assert result.uploaded == 1
    assert bucket_objects(s3, bucket)[key] == b"A = 1\n"


@pytest.mark.parametrize(
    ("location", "src", "entry", "message"),
    [
        ("Bad Name", "src", "definitions.py", "Invalid code location name"),
        ("../etc", "src", "definitions.py", "Invalid code location name"),
        ("main", "missing", "definitions.py", "does not exist"),
        ("main", "empty", "definitions.py", "has no files"),
        ("main", "src", "nope.py", "entry file 'nope.py'"),
        ("main", "src", "../definitions.py", "Unsafe"),
    ],
)
def test_bad_input_writes_nothing(
    s3: Any, bucket: str, source: Path, tmp_path: Path, location: str, src: str, entry: str, message: str
):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DagopsError, match=message):
        publish_location(s3, bucket, location, tmp_path / src, entry)
    assert bucket_objects(s3, bucket) == {}


def test_missing_bucket_is_one_sentence(s3: Any, source: Path):
    with pytest.raises(DagopsError, match="does not exist"):
        publish_location(s3, "no-such-bucket-here", "main", source)


def test_a_publish_in_progress_blocks_a_second_one(s3: Any, bucket: str, source: Path):
    publish_location(s3, bucket, "main", source)
    lease = {"host": "other-host", "pid": 42, "since": time.time()}
    s3.put_object(Bucket=bucket, Key="dags/main/" + LOCK_NAME, Body=json.dumps(lease).encode())
    (source / "pkg" / "assets.py").write_text("A = 3\n")
    before = manifest_of(s3, bucket)
    with pytest.raises(DagopsError, match=r"Another publish .* is in progress .*other-host"):
        publish_location(s3, bucket, "main", source)
    assert manifest_of(s3, bucket) == before
    assert bucket_objects(s3, bucket)["dags/main/pkg/assets.py"] == b"A = 1\n"


def test_a_stale_lease_is_taken_over(s3: Any, bucket: str, source: Path):
    lease = {"host": "crashed", "pid": 1, "since": time.time() - publish_mod.LOCK_TTL_SECONDS - 10}
    s3.put_object(Bucket=bucket, Key="dags/main/" + LOCK_NAME, Body=json.dumps(lease).encode())
    result = publish_location(s3, bucket, "main", source)
    assert result.manifest_written
    assert "dags/main/" + LOCK_NAME not in bucket_objects(s3, bucket)


def test_a_manifest_changed_meanwhile_is_not_overwritten(s3: Any, bucket: str, source: Path, tmp_path: Path):
    """Two publishes racing: the one that writes the manifest second fails instead of clobbering it."""
    publish_location(s3, bucket, "main", source)
    other = tmp_path / "other"
    other.mkdir()
    (other / "definitions.py").write_text("# the other publish\n")
    (source / "pkg" / "assets.py").write_text("A = 4\n")
    other_client = boto3.client("s3", endpoint_url=s3.meta.endpoint_url, region_name="us-east-1")
    raced = []

    def race(params: Any, model: Any, **_: Any) -> None:
        if model.name == "PutObject" and params["url_path"].endswith("_manifest.json") and not raced:
            raced.append(True)
            # The other publish sneaks in between our read of the manifest and our write of it
            # (its lease check is skipped by removing ours: the conditional write is the last guard).
            other_client.delete_object(Bucket=bucket, Key="dags/main/" + LOCK_NAME)
            publish_location(other_client, bucket, "main", other)

    s3.meta.events.register("before-call.s3", race)
    with pytest.raises(DagopsError, match="changed by another publish"):
        publish_location(s3, bucket, "main", source)
    s3.meta.events.unregister("before-call.s3", race)
    assert set(manifest_of(s3, bucket).files) == {"definitions.py"}


def test_unpublish_deletes_the_manifest_first_then_everything(s3: Any, bucket: str, source: Path):
    publish_location(s3, bucket, "main", source)
    s3.put_object(Bucket=bucket, Key="dags/mainline/_manifest.json", Body=b"{}")  # a neighbour prefix
    recorder = Recorder(s3)
    assert unpublish_location(s3, bucket, "main") == len(FILES) + 1
    deletes = [(op, key) for op, key in recorder.ops if op.startswith("Delete")]
    assert deletes[0] == ("DeleteObject", "dags/main/_manifest.json")
    assert set(bucket_objects(s3, bucket)) == {"dags/mainline/_manifest.json"}
    assert unpublish_location(s3, bucket, "main") == 0


def test_cli_publishes_and_reports(
    s3: Any, bucket: str, source: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
):
    monkeypatch.setenv("DAGSTER_S3_BUCKET", bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    assert main(["--location", "main", "--source", str(source)]) == 0
    out = capsys.readouterr().out
    assert "main: 4 uploaded, 0 deleted, 0 unchanged" in out
    assert main(["--location", "main", "--source", str(source)]) == 0
    assert "0 uploaded, 0 deleted, 4 unchanged" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["--location", "main", "--source", "SRC"], "DAGSTER_S3_BUCKET is not set"),
        ({"DAGSTER_S3_BUCKET": "BUCKET"}, ["--location", "No!", "--source", "SRC"], "Invalid code location"),
        (
            {"DAGSTER_S3_BUCKET": "BUCKET"},
            ["--location", "main", "--source", "/nonexistent"],
            "does not exist",
        ),
    ],
)
def test_cli_errors_are_one_line_and_exit_1(
    s3: Any,
    bucket: str,
    source: Path,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    env: dict,
    argv: list,
    message: str,
):
    monkeypatch.delenv("DAGSTER_S3_BUCKET", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("BUCKET", bucket))
    argv = [a.replace("SRC", str(source)) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert bucket_objects(s3, bucket) == {}


def test_a_publish_that_finished_while_this_one_planned_is_never_overwritten(
    s3: Any, moto_endpoint: str, bucket: str, source: Path, tmp_path: Path
):
    """This publish plans its uploads before taking the lease; another publish of the same location
    takes the lease, writes, and lets go in between. Uploading the stale plan would put this tree's bytes
    under the other manifest: it is refused, and nothing is written."""
    publish_location(s3, bucket, "main", source)
    other = tmp_path / "other"
    other.mkdir()
    for rel, text in FILES.items():
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        (other / rel).write_text(text)
    (other / "pkg" / "assets.py").write_text("A = 2\n")
    (source / "pkg" / "assets.py").write_text("A = 3\n")
    raced = []

    def the_other_publish_wins(params: Any, model: Any, **_: Any) -> None:
        # Just before this publish asks for the lease: the other one runs from start to finish.
        if not raced and model.name == "PutObject" and params.get("url_path", "").endswith(LOCK_NAME):
            rival = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
            raced.append(publish_location(rival, bucket, "main", other))

    s3.meta.events.register("before-call.s3", the_other_publish_wins)
    with pytest.raises(DagopsError, match="Another publish of code location 'main' finished meanwhile"):
        publish_location(s3, bucket, "main", source)
    s3.meta.events.unregister("before-call.s3", the_other_publish_wins)
    assert raced and manifest_of(s3, bucket).revision == raced[0].revision
    assert bucket_objects(s3, bucket)["dags/main/pkg/assets.py"] == b"A = 2\n"
    assert f"dags/main/{LOCK_NAME}" not in bucket_objects(s3, bucket)
