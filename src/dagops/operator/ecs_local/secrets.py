"""A container's ``secrets``: each ``valueFrom`` resolved as ECS's agent does, from Secrets Manager or
SSM Parameter Store."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dagops.errors import DagopsError


def parse_secret_reference(value_from: str) -> tuple[str, str, str, str]:
    """``valueFrom`` of a Secrets Manager secret -> (secret ARN, json key, version stage, version id).

    ECS's form is ``arn:aws:secretsmanager:<region>:<account>:secret:<name>:<json-key>:<stage>:<id>``,
    the last three optional (empty between colons); the secret's own ARN is the first seven fields.
    """
    parts = value_from.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager" or parts[5] != "secret" or len(parts) > 10:
        raise DagopsError(f"{value_from!r} is not a Secrets Manager secret reference.")
    extra = [*parts[7:], "", "", ""][:3]
    return ":".join(parts[:7]), extra[0], extra[1], extra[2]


def resolve_secret(value_from: str, client: Callable[[str], Any]) -> str:
    """The value ECS would inject for ``valueFrom``; ``client(service)`` makes a boto3 client."""
    if value_from.startswith("arn:") and value_from.split(":")[2:3] == ["ssm"]:
        name = value_from.split(":parameter", 1)[1]
        return str(client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    if not value_from.startswith("arn:"):
        return str(client("ssm").get_parameter(Name=value_from, WithDecryption=True)["Parameter"]["Value"])
    arn, key, stage, version = parse_secret_reference(value_from)
    kwargs: dict[str, str] = {"SecretId": arn}
    if stage:
        kwargs["VersionStage"] = stage
    if version:
        kwargs["VersionId"] = version
    text = client("secretsmanager").get_secret_value(**kwargs)["SecretString"]
    if not key:
        return str(text)
    try:
        document = json.loads(text)
    except ValueError:
        raise DagopsError(f"Secret {arn} is not JSON, so it has no key {key!r}.") from None
    if not isinstance(document, dict) or key not in document:
        raise DagopsError(f"Secret {arn} has no JSON key {key!r}.")
    return str(document[key])
