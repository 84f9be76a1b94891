"""AWS side of the command layer: image push, ECS deploys, logs, URL, credentials, pause/resume.

Every function takes a ``Deployment``: an environment's name and its tofu outputs (``dagops.outputs``),
with boto3 clients for the environment's region. Nothing here hard-codes a resource name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from dagops import outputs as tf_outputs
from dagops.errors import DagopsError

Echo = Callable[[str], None]


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
