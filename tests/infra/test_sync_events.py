"""The S3 -> SQS event path of the sync agents (modules/sync-events), applied against moto with live/dev.

Each location has its own queue; S3 announces only that location's manifest to it; only S3 for this bucket
may send; the agent's container carries the queue URL; the consumer role reads its own locations' queues
and nothing else. A publish of a manifest reaches exactly the right queue.
"""

from __future__ import annotations

import json

from tfharness import LOCATIONS, MOTO_ACCOUNT, REGION, Applied


def _queue_url(dev: Applied, loc: str) -> str:
    return str(dev.client("sqs").get_queue_url(QueueName=f"dagops-dev-sync-{loc}")["QueueUrl"])


def test_each_location_has_its_queue_and_the_bucket_announces_only_its_manifest(dev_applied: Applied) -> None:
    dev = dev_applied
    bucket = dev.outputs["bucket_name"]
    config = dev.client("s3").get_bucket_notification_configuration(Bucket=bucket)
    queues = {q["Id"]: q for q in config["QueueConfigurations"]}
    assert set(queues) == {f"sync-{loc}" for loc in LOCATIONS}
    for loc in LOCATIONS:
        q = queues[f"sync-{loc}"]
        assert q["QueueArn"] == f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:dagops-dev-sync-{loc}"
        assert sorted(q["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        rules = {r["Name"].lower(): r["Value"] for r in q["Filter"]["Key"]["FilterRules"]}
        assert rules == {"prefix": f"dags/{loc}/", "suffix": "_manifest.json"}
        attributes = dev.client("sqs").get_queue_attributes(
            QueueUrl=_queue_url(dev, loc), AttributeNames=["All"]
        )["Attributes"]
        [statement] = json.loads(attributes["Policy"])["Statement"]
        assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket}"
        assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"


def test_the_agents_container_carries_its_own_queue(dev_applied: Applied) -> None:
    dev = dev_applied
    family = dev.outputs["task_definition_families"]["stack"]
    task = dev.client("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]
    containers = {c["name"]: c for c in task["containerDefinitions"]}
    for loc in LOCATIONS:
        env = {e["name"]: e["value"] for e in containers[f"code-{loc}"]["environment"]}
        assert env["DAGOPS_SYNC_QUEUE_URL"] == _queue_url(dev, loc)
    for name in ("webserver", "daemon"):
        assert "DAGOPS_SYNC_QUEUE_URL" not in {e["name"] for e in containers[name]["environment"]}


def test_the_consumer_role_reads_each_queue_with_one_policy_scoped_to_it(dev_applied: Applied) -> None:
    iam = dev_applied.client("iam")
    role = "dagops-dev-stack"
    names = [n for n in iam.list_role_policies(RoleName=role)["PolicyNames"] if n.startswith("sync-events")]
    assert sorted(names) == sorted(f"sync-events-{loc}" for loc in LOCATIONS)
    for loc in LOCATIONS:
        document = iam.get_role_policy(RoleName=role, PolicyName=f"sync-events-{loc}")["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        [statement] = document["Statement"]
        assert sorted(statement["Action"]) == [
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ]
        assert statement["Resource"] == f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:dagops-dev-sync-{loc}"


def test_a_published_manifest_reaches_its_locations_queue_only(dev_applied: Applied) -> None:
    from dagops.runtime.sync.notify import manifest_keys

    dev = dev_applied
    s3, sqs = dev.client("s3"), dev.client("sqs")
    bucket = dev.outputs["bucket_name"]
    # moto enforces the bucket's TLS-only policy, and its endpoint is plain HTTP: in the emulator only, the
    # policy (checked by the storage tests) is lifted so that the test can write as a publish does.
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dags/sales_ops/v1/code.py", Body=b"x = 1\n")  # not a manifest
    s3.put_object(Bucket=bucket, Key="dags/sales_ops/_manifest.json", Body=b"{}")
    got = sqs.receive_message(
        QueueUrl=_queue_url(dev, "sales_ops"), WaitTimeSeconds=2, MaxNumberOfMessages=10
    )
    keys = [key for message in got.get("Messages", []) for key in manifest_keys(message["Body"])]
    assert keys == ["dags/sales_ops/_manifest.json"]
    other = sqs.receive_message(QueueUrl=_queue_url(dev, "main"), WaitTimeSeconds=1, MaxNumberOfMessages=10)
    assert [key for m in other.get("Messages", []) for key in manifest_keys(m["Body"])] == []
