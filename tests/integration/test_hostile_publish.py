"""Hostile trees, names and manifests against publish (every path that publishes), and the local stack's S3.

Publish must upload exactly what an agent accepts and nothing from outside the tree: links leading out,
names an agent refuses, or a live manifest with any bytes never lead to a traceback, a partial write or
a file from elsewhere in S3.
"""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto_s3 import bucket_objects

from dagops import registry
from dagops.errors import DagopsError
from dagops.manifest import (
    MAX_MANIFEST_BYTES,
    FileEntry,
    Manifest,
    _revision_v1,
    build,
    relpath_problem,
    revision_of,
)
from dagops.operator.devstack import s3 as local_s3
from dagops.operator.devstack.config import free_port
from dagops.operator.registry_watch import RegistryWatcher
from dagops.ports import free_ports
from dagops.publish import publish_location, read_exactly

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hostile-secret-0f1e2d3c"  # what a link or a leak would carry into S3
DEFS = "import dagster as dg\n\ndefs = dg.Definitions()\n"
_numbers = itertools.count()


pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A credentials file outside every tree."""
    path = tmp_path / "outside" / "credentials"
    path.parent.mkdir()
    path.write_text(f"[default]\naws_secret_access_key = {SECRET}\n")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "loc"
    (root / "pkg").mkdir(parents=True)
    (root / "definitions.py").write_text(DEFS)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "data.csv").write_text("a,b\n1,2\n")
    return root


def no_secret_in(state: dict[str, bytes]) -> bool:
    return all(SECRET.encode() not in body for body in state.values())


# --------------------------------------------------------------------------- class 3: names


def _make(root: Path, rel: bytes) -> None:
    """Create a file by its raw (bytes) relative path, folders included."""
    path = os.fsencode(root) + b"/" + rel
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"X = 1\n")


HOSTILE_NAMES: dict[str, bytes] = {
    "backslash": b"a\\b.py",
    "backslash-in-folder": b"sub\\dir/x.py",
    "manifest-name": b"_manifest.json",
    "lock-name": b"_publish.lock",
    "newline": b"line\nbreak.py",
    "newline-collision": b"definitions.py:" + b"0" * 64 + b"\npkg/x.py",
    "carriage-return": b"cr\r.py",
    "tab": b"tab\there.py",
    "bell": b"bell\x07.py",
    "delete": b"del\x7f.py",
    "ansi-escape": b"esc\x1b[31mred.py",
    "c1-control": "nel\x85.py".encode(),
    "not-utf8": b"caf\xe9.py",
    "not-utf8-folder": b"\xff\xfe/x.py",
    "too-long-path": b"/".join([b"d" * 200] * 5) + b"/x.py",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_NAMES))
def test_names_agents_refuse_are_refused_by_publish_before_anything_is_written(
    kind: str, s3: Any, bucket: str, tree: Path
) -> None:
    publish_location(s3, bucket, "main", tree)
    before = bucket_objects(s3, bucket)
    _make(tree, HOSTILE_NAMES[kind])
    with pytest.raises(DagopsError) as err:
        publish_location(s3, bucket, "main", tree)
    message = str(err.value)
    assert message.startswith(f"Refusing to publish {tree}: ") and "\n" not in message.replace(
        repr("\n")[1:-1], ""
    )
    assert bucket_objects(s3, bucket) == before  # nothing written, the live manifest untouched
    # One rule on both sides: the reason is relpath_problem's, and an agent refuses a manifest naming it.
    rel = os.fsdecode(HOSTILE_NAMES[kind])
    problem = relpath_problem(rel)
    assert problem and problem in message
    files = {"definitions.py": FileEntry("0" * 64, 1), rel: FileEntry("1" * 64, 1)}
    body = {
        "format": 2,
        "location": "main",
        "entry": "definitions.py",
        "revision": revision_of(files),
        "files": {k: {"sha256": v.sha256, "size": v.size} for k, v in files.items()},
    }
    with pytest.raises(DagopsError, match="Unsafe or reserved file path"):
        Manifest.from_json(json.dumps(body), "main")


def test_reserved_names_below_the_root_are_ordinary_files(tree: Path) -> None:
    (tree / "pkg" / "_manifest.json").write_text("{}")
    assert "pkg/_manifest.json" in build("main", tree)[0].files


# --------------------------------------------------------------------------- class 3: links


def _link(tree: Path, secret_file: Path, kind: str) -> None:
    if kind == "file-to-outside":
        (tree / "creds.txt").symlink_to(secret_file)
    elif kind == "relative-to-outside":
        (tree / "pkg" / "creds.txt").symlink_to(Path("..") / ".." / "outside" / "credentials")
    elif kind == "folder-to-outside":
        (tree / "aws").symlink_to(secret_file.parent, target_is_directory=True)
    elif kind == "dangling":
        (tree / "gone.py").symlink_to(tree / "nowhere.py")
    elif kind == "loop":
        (tree / "a.py").symlink_to(tree / "b.py")
        (tree / "b.py").symlink_to(tree / "a.py")
    elif kind == "to-proc-environ":
        (tree / "environ.txt").symlink_to("/proc/self/environ")
    elif kind == "chain-out":
        (tree / "hop.txt").symlink_to(tree / "pkg" / "hop2.txt")
        (tree / "pkg" / "hop2.txt").symlink_to(secret_file)
    elif kind == "folder-inside-then-out":
        (tree / "pkg" / "out").symlink_to(secret_file.parent, target_is_directory=True)
        (tree / "via").symlink_to(tree / "pkg", target_is_directory=True)
    else:
        raise AssertionError(kind)


OUTSIDE_LINKS = [
    "file-to-outside",
    "relative-to-outside",
    "folder-to-outside",
    "dangling",
    "loop",
    "to-proc-environ",
    "chain-out",
    "folder-inside-then-out",
]


@pytest.mark.parametrize("kind", OUTSIDE_LINKS)
def test_links_leading_outside_are_refused_and_nothing_is_uploaded(
    kind: str, s3: Any, bucket: str, tree: Path, secret_file: Path
) -> None:
    _link(tree, secret_file, kind)
    with pytest.raises(DagopsError, match="symbolic link") as err:
        publish_location(s3, bucket, "main", tree)
    assert "\n" not in str(err.value) and SECRET not in str(err.value)
    assert bucket_objects(s3, bucket) == {}


def test_links_inside_the_tree_publish_the_tree_s_own_bytes(s3: Any, bucket: str, tree: Path) -> None:
    (tree / "alias.csv").symlink_to(Path("pkg") / "data.csv")
    (tree / "pkg2").symlink_to(tree / "pkg", target_is_directory=True)  # a folder link: skipped
    result = publish_location(s3, bucket, "main", tree)
    state = bucket_objects(s3, bucket)
    assert state["dags/main/alias.csv"] == (tree / "pkg" / "data.csv").read_bytes()
    assert not any(key.startswith("dags/main/pkg2/") for key in state)
    assert result.uploaded == 4


def test_a_file_swapped_after_the_scan_is_not_uploaded(tree: Path, secret_file: Path) -> None:
    """What is uploaded is what was scanned: a link put in a file's place, or changed bytes, are refused."""
    manifest, paths = build("main", tree)
    item = manifest.files["pkg/data.csv"]
    assert read_exactly(paths["pkg/data.csv"], item) == b"a,b\n1,2\n"
    (tree / "pkg" / "data.csv").unlink()
    (tree / "pkg" / "data.csv").symlink_to(secret_file)
    with pytest.raises(DagopsError, match="Cannot read"):
        read_exactly(paths["pkg/data.csv"], item)
    (tree / "pkg" / "data.csv").unlink()
    (tree / "pkg" / "data.csv").write_text("a,b\n9,9\n")  # same size, other bytes
    with pytest.raises(DagopsError, match="changed while it was being published"):
        read_exactly(paths["pkg/data.csv"], item)
    (tree / "pkg" / "data.csv").write_text("a,b\n1,2\n" + SECRET)  # longer
    with pytest.raises(DagopsError, match="changed while it was being published"):
        read_exactly(paths["pkg/data.csv"], item)


# --------------------------------------------------------------------------- class 3: the revision

SHA_A, SHA_B = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
COLLIDING = [
    # (tree one, tree two): the same newline-joined "path:sha" text, different (path, content) pairs.
    ({"a": SHA_A, "b": SHA_B}, {f"a:{SHA_A}\nb": SHA_B}),
    ({"x": SHA_A, "y": SHA_A}, {f"x:{SHA_A}\ny": SHA_A}),
    ({"a:b": SHA_A}, {"a": SHA_A, "b": SHA_A}),  # no collision before either; still distinct
]


@pytest.mark.parametrize(("one", "two"), COLLIDING)
def test_the_revision_is_an_unambiguous_function_of_the_pairs(
    one: dict[str, str], two: dict[str, str]
) -> None:
    files_one = {rel: FileEntry(sha, 1) for rel, sha in one.items()}
    files_two = {rel: FileEntry(sha, 1) for rel, sha in two.items()}
    assert revision_of(files_one) != revision_of(files_two)


def test_the_old_revision_rule_collided_without_the_name_rule() -> None:
    """Why format 2: format 1's text collides for names with a newline, which check_relpath now refuses."""
    one, two = COLLIDING[0]
    assert _revision_v1({k: FileEntry(v, 1) for k, v in one.items()}) == _revision_v1(
        {k: FileEntry(v, 1) for k, v in two.items()}
    )
    assert relpath_problem(next(iter(two)))


def test_a_publish_never_deletes_what_the_live_manifest_names(s3: Any, bucket: str, tree: Path) -> None:
    def live_keys_present() -> bool:
        state = bucket_objects(s3, bucket)
        live = Manifest.from_json(state["dags/main/_manifest.json"], "main")
        return all(f"dags/main/{rel}" in state for rel in live.files)

    publish_location(s3, bucket, "main", tree)
    s3.put_object(Bucket=bucket, Key="dags/main/stray.py", Body=b"stray")
    publish_location(s3, bucket, "main", tree)  # the same revision: only the stray key goes
    assert live_keys_present() and "dags/main/stray.py" not in bucket_objects(s3, bucket)
    (tree / "pkg" / "data.csv").unlink()
    publish_location(s3, bucket, "main", tree)
    assert live_keys_present() and "dags/main/pkg/data.csv" not in bucket_objects(s3, bucket)
    # A live manifest in format 1 naming the same files: read, recognised, nothing rewritten or deleted.
    manifest = build("main", tree)[0]
    legacy = {
        "format": 1,
        "location": "main",
        "entry": "definitions.py",
        "revision": _revision_v1(manifest.files),
        "files": {k: {"sha256": v.sha256, "size": v.size} for k, v in manifest.files.items()},
    }
    s3.put_object(Bucket=bucket, Key="dags/main/_manifest.json", Body=json.dumps(legacy).encode())
    result = publish_location(s3, bucket, "main", tree)
    assert (result.manifest_written, result.deleted) == (False, 0) and live_keys_present()


# --------------------------------------------------------------------------- class 1: publish CLI

LIVE_MANIFESTS = {
    "nested": b"[" * 200_000,
    "not-utf8": b'{"format": 2, "location": "m\xffain"}',
    "duplicate-keys": b'{"format": 2, "format": 1}',
    "boolean-size": json.dumps(
        {
            "format": 2,
            "location": "main",
            "entry": "d.py",
            "files": {"d.py": {"sha256": "0" * 64, "size": True}},
        }
    ).encode(),
    "too-large": b" " * (MAX_MANIFEST_BYTES + 1),
    "a-list": b"[]",
    "nan": b'{"format": NaN}',
}


def test_publish_cli_replaces_any_live_manifest_without_a_traceback(
    moto_endpoint: str, s3: Any, bucket: str, tree: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGSTER_", "DAGOPS_"))},
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "DAGSTER_S3_BUCKET": bucket,
    }
    for name, body in LIVE_MANIFESTS.items():
        s3.put_object(Bucket=bucket, Key="dags/main/_manifest.json", Body=body)
        proc = subprocess.run(
            [sys.executable, "-m", "dagops.publish", "--location", "main", "--source", str(tree)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "Traceback" not in output, (name, output)
        live = s3.get_object(Bucket=bucket, Key="dags/main/_manifest.json")["Body"].read()
        assert Manifest.from_json(live, "main").revision == build("main", tree)[0].revision, name


# --------------------------------------------------------------------------- every publishing path


def _project(root: Path, tree_name: str = "loc") -> Path:
    """A project root whose registry names one own location, code_locations/<tree_name>."""
    (root / "code_locations").mkdir(parents=True)
    registry.save([registry.Location(name="main", source=f"code_locations/{tree_name}")], root)
    return root / "code_locations" / tree_name


def test_dags_deploy_refuses_a_link_to_outside_in_one_sentence(
    moto_endpoint: str, s3: Any, bucket: str, tmp_path: Path, secret_file: Path
) -> None:
    location = _project(tmp_path / "project")
    location.mkdir()
    (location / "definitions.py").write_text(DEFS)
    (location / "creds").symlink_to(secret_file)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGSTER_", "DAGOPS_"))},
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DAGOPS_ROOT": str(tmp_path / "project"),
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "dags.deploy", "--bucket", bucket, "--endpoint-url", moto_endpoint],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output and SECRET not in output
    assert "symbolic link to outside the folder" in output
    assert bucket_objects(s3, bucket) == {}


def test_the_registry_watcher_does_not_start_a_location_it_cannot_publish(
    s3: Any, bucket: str, tmp_path: Path, secret_file: Path
) -> None:
    root = tmp_path / "project"
    location = _project(root)
    location.mkdir()
    (location / "definitions.py").write_text(DEFS)
    said: list[str] = []
    started: list[str] = []
    watcher = RegistryWatcher(
        root=root,
        host="127.0.0.1",
        servers=[],
        workspace_yaml=tmp_path / "workspace.yaml",
        ui_url="http://127.0.0.1:9",
        start_agent=lambda name, host, port: started.append(name),
        stop_agent=lambda name: None,
        publish=lambda loc: publish_location(s3, bucket, loc.name, loc.path(root), loc.entry),
        say=said.append,
    )
    (location / "aws").symlink_to(secret_file.parent, target_is_directory=True)
    os.utime(registry.registry_path(root), ns=(1, 1))  # the registry "changed"
    watcher.poll()
    assert started == []
    assert any(line.startswith("registry: could not start main: Refusing to publish") for line in said), said
    assert bucket_objects(s3, bucket) == {}


# --------------------------------------------------------------------------- class 6: the local stack's S3


class _FakeS3(http.server.BaseHTTPRequestHandler):
    """An HTTP endpoint that refuses every request the way S3 refuses an unknown access key."""

    reply = (403, b"<Error><Code>InvalidAccessKeyId</Code><Message>The key does not exist.</Message></Error>")

    def _answer(self) -> None:
        status, body = self.reply
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = _answer

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def refusing_s3() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("bad-credentials", "refused the local stack's credentials (InvalidAccessKeyId)"),
        ("unreachable", "could not be used"),
        ("not-s3", "answered"),
    ],
)
def test_ensure_bucket_failures_are_one_sentence(
    case: str, expect: str, refusing_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
    else:
        url = refusing_s3
        if case == "not-s3":
            monkeypatch.setattr(_FakeS3, "reply", (500, b"<html>a web page</html>"))
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="dagops-local",
        aws_secret_access_key="dagops-local",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    with pytest.raises(DagopsError, match=re.escape(expect)) as err:
        local_s3.ensure_bucket(client, "dagops-local")
    assert "\n" not in str(err.value) and "dagops-local" in str(err.value)


@pytest.mark.parametrize("case", ["bad-credentials", "unreachable", "malformed-url"])
def test_local_stack_start_with_bad_s3_is_one_sentence(case: str, refusing_s3: str, tmp_path: Path) -> None:
    url = {
        "bad-credentials": refusing_s3,
        "unreachable": f"http://127.0.0.1:{free_port()}",
        "malformed-url": "localhost:9000",
    }[case]
    config = {
        "storage": "sqlite",
        "s3_url": url,
        "state_dir": str(tmp_path / "state"),
        "ui_port": free_port(),
        "code_server_base_port": free_ports(16)[0],
        "startup_timeout": 20,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGSTER_", "DAGOPS_"))}
    env["DAGOPS_ROOT"] = str(tmp_path)
    (tmp_path / "code_locations").mkdir()
    registry.save([], tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "dagops.operator.devstack", "up", "--quiet", "--config", json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_local_stack_start_refuses_a_location_with_a_link_to_outside(
    tmp_path: Path, secret_file: Path
) -> None:
    """The local stack publishes every location at start: a link leading out stops it in one line."""
    location = _project(tmp_path / "project")
    location.mkdir()
    (location / "definitions.py").write_text(DEFS)
    (location / "creds").symlink_to(secret_file)
    config = {
        "storage": "sqlite",
        "state_dir": str(tmp_path / "state"),
        "ui_port": free_port(),
        "s3_port": free_port(),
        "code_server_base_port": free_ports(16)[0],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGSTER_", "DAGOPS_"))}
    env["DAGOPS_ROOT"] = str(tmp_path / "project")
    proc = subprocess.run(
        [sys.executable, "-m", "dagops.operator.devstack", "up", "--quiet", "--config", json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output and SECRET not in output
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "symbolic link to outside the folder" in lines[0], proc.stderr
