"""AWS side of the command layer: image push, ECS deploys, logs, URL, credentials, pause/resume.

Every function takes a ``Deployment``: an environment's name and its tofu outputs
(``dagops.operator.outputs``),
with boto3 clients for the environment's region. Nothing here hard-codes a resource name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from dagops.errors import DagopsError
from dagops.operator import outputs as tf_outputs

Echo = Callable[[str], None]
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Deployment:
    """One deployed environment: its name, its tofu outputs and boto3 clients in its region."""

    env: str
    outputs: dict[str, Any]
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, env: str) -> Deployment:
        """The environment ``env`` (validated against live/) with the outputs of its tofu root."""
        return cls(env=env, outputs=tf_outputs.load(env))

    def require(self, name: str) -> Any:
        return tf_outputs.require(self.outputs, name, self.env)

    def mapping(self, name: str) -> dict[str, str]:
        value = self.require(name)
        if not isinstance(value, dict):
            raise DagopsError(
                f"Output {name!r} of environment {self.env!r} should be a map, not {type(value).__name__}."
            )
        return {str(k): str(v) for k, v in value.items()}

    @property
    def region(self) -> str:
        return str(self.require("region"))

    @property
    def cluster(self) -> str:
        return str(self.require("cluster_name"))

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]


def _sentence(text: object) -> str:
    """One line, no trailing full stop (the caller adds it)."""
    return re.sub(r"\s+", " ", str(text)).strip().rstrip(".")


def _service_of(dep: Deployment | None, operation: str) -> str:
    """The AWS service (e.g. "Amazon ECS") whose client of ``dep`` has ``operation``; "AWS" if unknown."""
    for client in dep._clients.values() if dep is not None else ():
        model = client.meta.service_model
        if operation in model.operation_names:
            return str(model.metadata.get("serviceAbbreviation") or model.service_name)
    return "AWS"


def aws_failure(exc: ClientError | BotoCoreError, dep: Deployment | None = None) -> DagopsError:
    """One sentence for an AWS error: the service, the operation and AWS's own message."""
    where = f" for environment {dep.env!r}" if dep is not None else ""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Error")
        operation = exc.operation_name or "a request"
        if code == "ClusterNotFoundException" and dep is not None and dep.outputs.get("cluster_name"):
            return DagopsError(
                f"ECS cluster {dep.outputs['cluster_name']!r} of environment {dep.env!r} does not exist "
                f"({operation}); apply its tofu root first."
            )
        message = _sentence(error.get("Message") or code)
        return DagopsError(f"{_service_of(dep, operation)} {operation} failed{where}: {message} ({code}).")
    if isinstance(exc, NoCredentialsError):
        return DagopsError(
            f"No AWS credentials found{where}: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
        )
    if isinstance(exc, NoRegionError):
        return DagopsError(f"No AWS region{where}: its outputs name none and AWS_DEFAULT_REGION is unset.")
    return DagopsError(f"AWS request failed{where}: {_sentence(exc)}.")


@contextmanager
def aws_errors(dep: Deployment | None = None) -> Iterator[None]:
    """Turn botocore's ClientError and BotoCoreError into a one-sentence DagopsError."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise aws_failure(exc, dep) from None


def aws_boundary(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator for a library function whose first argument is a Deployment: see ``aws_errors``."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        dep = args[0] if args and isinstance(args[0], Deployment) else None
        with aws_errors(dep):
            return func(*args, **kwargs)

    return wrapper
