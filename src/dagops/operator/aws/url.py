"""The web UI's address: the load balancer's URL when there is one, else the webserver task's public IP."""

from __future__ import annotations

from dagops.errors import DagopsError
from dagops.operator.aws import Deployment, aws_boundary

WEBSERVER_PORT = 3000


@aws_boundary
def webserver_url(dep: Deployment) -> str:
    """``webserver_url`` from the outputs, or ``http://<public ip>:3000`` of a running webserver task."""
    configured = dep.outputs.get("webserver_url")
    if configured:
        return str(configured)
    services = dep.mapping("service_names")
    service = services.get("webserver") or services.get("stack")
    if not service:
        raise DagopsError(f"Environment {dep.env!r} has no webserver service in its 'service_names' output.")
    ecs = dep.client("ecs")
    arns = ecs.list_tasks(cluster=dep.cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster=dep.cluster, tasks=arns)["tasks"] if arns else []
    # A service's tasks are in the group "service:<name>" (ListTasks already filters; this keeps it exact).
    tasks = [
        t
        for t in tasks
        if t.get("group") in (None, f"service:{service}") and t.get("lastStatus") == "RUNNING"
    ]
    eni_ids = [
        detail["value"]
        for task in tasks
        for attachment in task.get("attachments", [])
        if attachment.get("type") == "ElasticNetworkInterface"
        for detail in attachment.get("details", [])
        if detail.get("name") == "networkInterfaceId"
    ]
    if not eni_ids:
        raise DagopsError(
            f"No running webserver task in environment {dep.env!r} (service {service}); "
            f"is it paused? Try `invoke env.resume --env {dep.env}`."
        )
    interfaces = dep.client("ec2").describe_network_interfaces(NetworkInterfaceIds=eni_ids)[
        "NetworkInterfaces"
    ]
    for interface in interfaces:
        public_ip = (interface.get("Association") or {}).get("PublicIp")
        if public_ip:
            return f"http://{public_ip}:{WEBSERVER_PORT}"
    raise DagopsError(f"The webserver task of environment {dep.env!r} has no public IP address.")
