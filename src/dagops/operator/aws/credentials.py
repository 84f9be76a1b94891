"""The access key of the environment's S3 user: from the tofu outputs, or from Secrets Manager."""

from __future__ import annotations

import json

from dagops.errors import DagopsError
from dagops.operator.aws import Deployment, aws_boundary


@aws_boundary
def aws_credentials(dep: Deployment) -> tuple[str, str]:
    """(access key id, secret access key)."""
    key_id, secret = dep.outputs.get("aws_access_key_id"), dep.outputs.get("aws_secret_access_key")
    if key_id and secret:
        return str(key_id), str(secret)
    arn = dep.outputs.get("aws_credentials_secret_arn")
    if not arn:
        raise DagopsError(
            f"Environment {dep.env!r} has neither aws_access_key_id/aws_secret_access_key "
            "nor aws_credentials_secret_arn in its outputs."
        )
    sm = dep.client("secretsmanager")
    try:
        raw = sm.get_secret_value(SecretId=arn)["SecretString"]
    except sm.exceptions.ResourceNotFoundException:
        raise DagopsError(
            f"The credentials secret {arn} of environment {dep.env!r} does not exist."
        ) from None
    try:
        data = json.loads(raw)
        return str(data["aws_access_key_id"]), str(data["aws_secret_access_key"])
    except (ValueError, KeyError, TypeError):
        raise DagopsError(
            f"The secret {arn} should be JSON with aws_access_key_id and aws_secret_access_key."
        ) from None
