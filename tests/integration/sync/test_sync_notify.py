"""The event path: S3 notifications to SQS wake the sync loop (moto delivers them like S3 does)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from polling import wait_for
from synctrees import agent_env, agent_process, write_tree

from dagops.runtime.sync.notify import SqsWaker, manifest_keys
from dagops.runtime.sync.status import read_status

pytestmark = pytest.mark.usefixtures("fake_aws")  # tests/conftest.py, like s3 and bucket


def _record(key: str) -> dict[str, Any]:
    return {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": key}}}


def test_manifest_keys_reads_s3_sns_and_odd_messages():
    plain = json.dumps({"Records": [_record("dags/my+loc/_manifest.json"), _record("dags/a%2Bb/x.py")]})
    assert manifest_keys(plain) == ["dags/my loc/_manifest.json", "dags/a+b/x.py"]
    via_sns = json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [_record("k")]})})
    assert manifest_keys(via_sns) == ["k"]
    assert manifest_keys(json.dumps({"Event": "s3:TestEvent", "Service": "Amazon S3"})) == []
    assert manifest_keys("not json") == []
    assert manifest_keys(json.dumps({"Records": [{"s3": {}}]})) == []


@pytest.fixture
def queue(moto_endpoint: str, s3: Any, bucket: str) -> str:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"{bucket}-main")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = [{"Name": "prefix", "Value": "dags/main/"}, {"Name": "suffix", "Value": "_manifest.json"}]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": rules}},
                }
            ]
        },
    )
    return str(url)


def test_a_published_manifest_wakes_the_waker(moto_endpoint: str, queue: str, publish: Any, source: Path):
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    waker = SqsWaker(sqs, queue, "main").start()
    try:
        assert not waker.wait(1.5)  # nothing happened yet
        started = time.monotonic()
        publish(source)
        assert waker.wait(15)
        assert time.monotonic() - started < 10
        assert waker.events == 1
        # Another location's manifest (same queue, to prove the key check) does not wake it.
        sqs.send_message(
            QueueUrl=queue, MessageBody=json.dumps({"Records": [_record("dags/other/_manifest.json")]})
        )
        assert not waker.wait(2)
    finally:
        waker.stop()
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"  # consumed and deleted


def test_agent_with_a_queue_syncs_a_change_without_waiting_for_the_interval(
    moto_endpoint: str, bucket: str, queue: str, publish: Any, source: Path, tmp_path: Path
):
    code_dir = tmp_path / "code"
    first = publish(source)
    args = ["run", "--location", "main", "--code-dir", str(code_dir), "--interval", "3600",
            "--no-code-server", "--queue-url", queue]  # fmt: skip
    with agent_process(args, agent_env(moto_endpoint, bucket), tmp_path / "agent.log") as proc:
        status_dir = code_dir / "main"
        wait_for(
            lambda: (s := read_status(status_dir)) and s.revision == first.revision, 60, "first sync", proc
        )
        write_tree(source, {"data/seed.csv": "a,b\n0,0\n"})
        second = publish(source)
        wait_for(
            lambda: (s := read_status(status_dir)) and s.revision == second.revision, 45, "the event", proc
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
