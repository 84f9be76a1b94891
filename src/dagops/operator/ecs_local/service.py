"""What an ECS service runs, read back from AWS: its task definition (DescribeServices,
DescribeTaskDefinition) and the Cloud Map names its tasks register (GetService, GetNamespace)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dagops.errors import DagopsError


@dataclass(frozen=True)
class ServiceTask:
    """What an ECS service runs: its task definition and the Cloud Map names its tasks register."""

    service: str
    task_definition: dict[str, Any]
    aliases: list[str]


def service_tasks(client: Callable[[str], Any], cluster: str, services: Sequence[str]) -> list[ServiceTask]:
    """Read each service back (DescribeServices, DescribeTaskDefinition, Cloud Map's GetService/Namespace)."""
    ecs, discovery = client("ecs"), client("servicediscovery")
    out: list[ServiceTask] = []
    described = ecs.describe_services(cluster=cluster, services=list(services))
    if described.get("failures"):
        raise DagopsError(f"ECS does not know these services: {described['failures']}.")
    for svc in described["services"]:
        td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
        aliases = []
        for registry in svc.get("serviceRegistries", []):
            service_id = registry["registryArn"].rsplit("/", 1)[1]
            entry = discovery.get_service(Id=service_id)["Service"]
            # A service created with DnsConfig carries its namespace there (moto returns only that).
            namespace_id = entry.get("NamespaceId") or entry["DnsConfig"]["NamespaceId"]
            namespace = discovery.get_namespace(Id=namespace_id)["Namespace"]["Name"]
            aliases.append(f"{entry['Name']}.{namespace}")
        out.append(ServiceTask(service=svc["serviceName"], task_definition=td, aliases=aliases))
    return out
