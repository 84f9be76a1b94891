"""Location ``main``: it loads, its job materializes into S3 (moto), its S3 resource keeps to its prefix."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import boto3
import dagster as dg
import pytest
from moto import mock_aws

from dagops.errors import DagopsError
from dagops.runtime.resources import LocationS3, location_key

LOCATION_DIR = Path(__file__).resolve().parents[2] / "code_locations" / "main"
BUCKET = "unit-bucket"


@pytest.fixture
def main_location(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """definitions.py loaded by path as the code server does, with no bucket set (no import-time reads)."""
    monkeypatch.delenv("DAGSTER_S3_BUCKET", raising=False)
    monkeypatch.syspath_prepend(str(LOCATION_DIR))
    for name in [m for m in sys.modules if m in ("pipelines", "resources") or m.startswith("pipelines.")]:
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location("main_definitions", LOCATION_DIR / "definitions.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in [m for m in sys.modules if m in ("pipelines", "resources") or m.startswith("pipelines.")]:
        del sys.modules[name]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_definitions_load(main_location: ModuleType) -> None:
    defs: dg.Definitions = main_location.defs
    dg.Definitions.validate_loadable(defs)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert {dg.AssetKey("raw_numbers"), dg.AssetKey("number_summary")} <= keys
    assert defs.resolve_job_def("numbers_job").name == "numbers_job"
    schedule = defs.resolve_schedule_def("numbers_daily")
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.job_name == "numbers_job"


def test_numbers_job_materializes_into_the_location_prefix(
    main_location: ModuleType, s3: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_S3_BUCKET", BUCKET)
    result = main_location.defs.resolve_job_def("numbers_job").execute_in_process()
    assert result.success
    client = boto3.client("s3", region_name="us-east-1")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["assets/main/numbers/raw.json", "assets/main/numbers/summary.json"]
    summary = json.loads(
        client.get_object(Bucket=BUCKET, Key="assets/main/numbers/summary.json")["Body"].read()
    )
    assert summary == {"count": 10, "sum": 55, "mean": 5.5}


def test_a_new_pipeline_module_is_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """definitions.py merges every pipelines/ module's ``defs``; a module without ``defs`` is a helper."""
    import shutil

    copy = tmp_path / "main"
    shutil.copytree(LOCATION_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    (copy / "pipelines" / "extra.py").write_text(
        "import dagster as dg\n\n@dg.asset\ndef extra_asset() -> int:\n    return 1\n\n"
        "defs = dg.Definitions(assets=[extra_asset])\n"
    )
    (copy / "pipelines" / "helpers.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(copy))
    for name in [m for m in sys.modules if m in ("pipelines", "resources") or m.startswith("pipelines.")]:
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location("copy_definitions", copy / "definitions.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        keys = module.defs.resolve_asset_graph().get_all_asset_keys()
        assert dg.AssetKey("extra_asset") in keys and dg.AssetKey("raw_numbers") in keys
    finally:
        for name in [m for m in sys.modules if m in ("pipelines", "resources") or m.startswith("pipelines.")]:
            del sys.modules[name]


# Prefix isolation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "full"),
    [
        ("x.json", "assets/main/x.json"),
        ("daily/2024-01-01/x.json", "assets/main/daily/2024-01-01/x.json"),
        ("assets/main/x.json", "assets/main/x.json"),
    ],
)
def test_keys_land_in_the_location_prefix(key: str, full: str) -> None:
    assert location_key("main", key) == full


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("../other/x.json", r"'\.', '\.\.'"),
        ("a/../../x", r"'\.', '\.\.'"),
        ("/etc/passwd", "relative"),
        ("assets/other/x.json", "outside location 'main'"),
        ("dags/main/definitions.py", "outside location 'main'"),
        ("logs/dev/x", "outside location 'main'"),
        ("a//b", "empty path segments"),
        ("", "non-empty"),
        ("dir/", "does not name an object"),
        ("assets/main/", "does not name an object"),
    ],
)
def test_keys_outside_the_prefix_are_refused(key: str, why: str) -> None:
    with pytest.raises(DagopsError, match=why):
        location_key("main", key)


def test_resource_reads_and_writes_only_its_prefix(s3: object) -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.put_object(Bucket=BUCKET, Key="assets/other/secret.json", Body=b"{}")
    resource = LocationS3(location="main", bucket=BUCKET)
    assert resource.put_json("a/b.json", {"x": 1}) == "assets/main/a/b.json"
    assert resource.get_json("a/b.json") == {"x": 1}
    assert list(resource.list_keys()) == ["a/b.json"]
    with pytest.raises(DagopsError):
        resource.get_bytes("assets/other/secret.json")
    with pytest.raises(DagopsError):
        resource.put_bytes("../other/secret.json", b"overwrite")
    assert client.get_object(Bucket=BUCKET, Key="assets/other/secret.json")["Body"].read() == b"{}"
    resource.delete("a/b.json")
    assert list(resource.list_keys()) == []
